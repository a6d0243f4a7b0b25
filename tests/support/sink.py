"""A real HTTP sink that records what webhooks send, and answers as a test programs it.

Runs aiohttp.web on its own event loop in a thread (tests), or as a process
(`python -m tests.support.sink PORT`, the benchmark) controlled over HTTP under `/_sink/`.
Each request is recorded with method, path, query, headers and body. A program rule for a
path prefix answers with a status and optional `Retry-After`, delays, or hangs until the
rule is removed or the sink stops.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass(frozen=True)
class Recorded:
    """One request as the sink received it."""

    method: str
    path: str
    query: str  # raw, still percent-encoded
    headers: dict[str, str]  # names lower-cased
    body: bytes
    at: float
    answered: int

    @property
    def query_params(self) -> dict[str, str]:
        return dict(parse_qsl(self.query, keep_blank_values=True))

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Program:
    """How to answer requests whose path starts with `prefix`."""

    prefix: str
    status: int = 200
    retry_after: str | None = None
    hang: bool = False
    delay: float = 0.0
    times: int | None = None  # answer like this this many times, then fall through
    released: asyncio.Event = field(default_factory=asyncio.Event)


class Sink:
    """The recording server. `with Sink() as sink:` or `start()` / `stop()`."""

    def __init__(self, port: int = 0, *, record: bool = True) -> None:
        self.port = port
        self.record = record
        self._lock = threading.Lock()
        self._records: list[Recorded] = []
        self._counts: dict[str, int] = {}
        self._programs: list[Program] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # lifecycle -------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/_sink/stats", self._stats)
        app.router.add_post("/_sink/program", self._program_http)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, backlog=1024)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])

    async def shutdown(self) -> None:
        for p in self._programs:
            p.released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> Sink:
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="sink", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("sink did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # programming -----------------------------------------------------------------------
    def program(self, prefix: str, **how: Any) -> None:
        """Answer requests under `prefix` as told (latest rule first); see `Program`."""
        assert self._loop is not None

        def add() -> None:
            self._programs.insert(0, Program(prefix, **how))

        self._call(add)

    def clear(self, prefix: str | None = None) -> None:
        """Remove rules (all, or for one prefix); requests hanging under them are released."""

        def drop() -> None:
            keep = []
            for p in self._programs:
                if prefix is None or p.prefix == prefix:
                    p.released.set()
                else:
                    keep.append(p)
            self._programs = keep

        self._call(drop)

    def _call(self, fn: Callable[[], None]) -> None:
        assert self._loop is not None
        done = threading.Event()

        def run() -> None:
            fn()
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)

    # reading ---------------------------------------------------------------------------
    def requests(self, prefix: str = "/") -> list[Recorded]:
        with self._lock:
            return [r for r in self._records if r.path.startswith(prefix)]

    def count(self, prefix: str = "/") -> int:
        with self._lock:
            return sum(n for path, n in self._counts.items() if path.startswith(prefix))

    def wait_for(self, n: int, prefix: str = "/", timeout: float = 15.0) -> list[Recorded]:
        """At least `n` requests under `prefix` (200 or not), polling until a deadline."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.requests(prefix)
            if len(got) >= n or time.monotonic() > deadline:
                if len(got) < n:
                    raise AssertionError(f"{len(got)} requests under {prefix}, expected {n}")
                return got
            time.sleep(0.02)

    # handlers --------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        program = self._match(request.path)
        status = program.status if program else 200
        if program is not None and program.delay:
            await asyncio.sleep(program.delay)
        self._note(request, body, status)
        if program is not None and program.hang:
            await program.released.wait()
            return web.Response(status=503, text="released")
        headers = {"Retry-After": program.retry_after} if program and program.retry_after else {}
        return web.Response(status=status, text="ok" if status < 300 else "no", headers=headers)

    def _match(self, path: str) -> Program | None:
        for p in self._programs:
            if path.startswith(p.prefix):
                if p.times is not None:
                    if p.times <= 0:
                        continue
                    p.times -= 1
                return p
        return None

    def _note(self, request: web.Request, body: bytes, status: int) -> None:
        with self._lock:
            self._counts[request.path] = self._counts.get(request.path, 0) + 1
            if self.record:
                self._records.append(
                    Recorded(
                        request.method,
                        request.path,
                        request.raw_path.partition("?")[2],
                        {k.lower(): v for k, v in request.headers.items()},
                        body,
                        time.time(),
                        status,
                    )
                )

    async def _stats(self, request: web.Request) -> web.Response:
        with self._lock:
            counts = dict(self._counts)
        return web.json_response({"counts": counts, "total": sum(counts.values())})

    async def _program_http(self, request: web.Request) -> web.Response:
        how = await request.json()
        prefix = how.pop("prefix")
        if how.pop("clear", False):
            for p in self._programs:
                if p.prefix == prefix:
                    p.released.set()
            self._programs = [p for p in self._programs if p.prefix != prefix]
        else:
            self._programs.insert(0, Program(prefix, **how))
        return web.json_response({"ok": True})


def main() -> None:
    """`python -m tests.support.sink PORT`: a counting (not recording) sink process."""
    sink = Sink(int(sys.argv[1]), record=False)

    async def run() -> None:
        await sink.serve()
        try:
            await asyncio.Event().wait()
        finally:
            await sink.shutdown()

    try:
        import uvloop

        uvloop.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
