"""Phone GETs answered from callbacks on uvicorn's own HTTP protocol, without an ASGI task.

A phone request is one short GET whose answer waits only for the group commit. Through ASGI
each one costs a task, a scope, two `send` messages and their header checks: about a third
of the hub's CPU per request (bench/README.md). This subclass of uvicorn's httptools
protocol takes over where uvicorn turns a parsed head into a request: a GET or HEAD for the
ingest endpoint gets uvicorn's scope and cycle (its path decoded with one C call rather
than urllib's unquote) and is handled right there; a pipelined one waits in uvicorn's
queue and is taken at the point where uvicorn would start the ASGI app for it. Its response
is written when the commit's future completes, with the same back-pressure as uvicorn's
`send`.
Everything else (the REST API, the dashboard, POST bodies, pipelining, keep-alive,
shutdown) stays uvicorn's, except that a connection with pipelined requests queued is not
read from until they are answered (uvicorn would read, parse and queue without limit).
Limits, request-line mending and `/ws` are the base class's (callhook/http_protocol.py).

The hooks are private to uvicorn (`on_headers_complete`'s steps, `_start_asgi_task`; the
pinned range has them and tests/unit/test_uvicorn_contract.py checks). Where the hook is
missing, phones are served through ASGI (`plain_protocol()`) on the same bounded, tolerant
protocol, with the same answers; the hub then logs a warning and sets
`callhook_ingest_fast_path` to 0.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote_to_bytes

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from callhook.errors import error_json
from callhook.http_protocol import Guard, HubHttpProtocol, protocol_class
from callhook.ingest.routes import Accepted, IngestEndpoint, request_headers

log = logging.getLogger("callhook.ingest")
_INTERNAL = error_json("internal", "internal error")

AVAILABLE = callable(getattr(HttpToolsProtocol, "_start_asgi_task", None))


class IngestHttpProtocol(HubHttpProtocol):
    """The main port's protocol, answering phone GETs itself (see the module text)."""

    endpoint: IngestEndpoint  # set on the subclass protocol_for() makes

    def send_400_response(self, msg: str) -> None:
        client = self.client
        self.endpoint.traffic.phone_refused(client[0] if client else "", 400, "unreadable")
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        # uvicorn's, for a phone's GET or HEAD: the same scope and cycle, but the path is
        # decoded with one C call instead of urllib's unquote (~2 µs a request: a phone's
        # URL has `%20`s), and the request is answered here rather than via _start_asgi_task.
        # Anything else is uvicorn's (and _start_asgi_task's) as before.
        parser = self.parser
        method = parser.get_method()
        if (
            (method != b"GET" and method != b"HEAD")
            or parser.should_upgrade()
            or self.root_path
            or self.limit_concurrency is not None
        ):
            super().on_headers_complete()
            return
        url = httptools.parse_url(self.url)
        raw_path = url.path
        query = url.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:  # what urllib's unquote gives for an ASCII path
            path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
        verb = "GET" if method == b"GET" else "HEAD"
        if not self.endpoint.is_phone(verb, path, raw_path, query):
            super().on_headers_complete()
            return
        self._head_read()
        version = parser.get_http_version()
        scope = self.scope
        scope["method"] = verb
        if version != "1.1":
            scope["http_version"] = version
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query
        existing = self.cycle
        cycle = self.cycle = RequestResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=self.expect_100_continue,
            keep_alive=version != "1.0" and parser.should_keep_alive(),
            on_response=self.on_response_complete,
        )
        if existing is None or existing.response_complete:
            self._ingest(cycle)
        else:  # pipelined behind an unanswered request: on_response_complete starts it
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        scope = cycle.scope
        method = scope["method"]
        if (
            (method == "GET" or method == "HEAD")
            and app is self.app
            and self.endpoint.is_phone(
                method, scope["path"], scope["raw_path"], scope["query_string"]
            )
        ):
            self._ingest(cycle)
            return
        super()._start_asgi_task(cycle, app)

    def on_response_complete(self) -> None:
        # uvicorn resumes reading after every answer, even with pipelined requests still
        # queued: a client that pipelines without pause would have every read's worth of
        # requests parsed and queued in memory. Read more only once the queue is empty.
        super().on_response_complete()
        if self.pipeline:
            self.flow.pause_reading()

    def _ingest(self, cycle: RequestResponseCycle) -> None:
        scope = cycle.scope
        _, user_agent = request_headers(scope["headers"])
        client = self.client
        # Behind a listed reverse proxy, the phone is the address the proxy forwarded for.
        source = self.endpoint.proxies.client(client[0], scope["headers"]) if client else ""
        try:
            outcome = self.endpoint.begin(
                scope["method"],
                scope["raw_path"],
                scope["query_string"],
                b"",
                "",
                user_agent,
                source,
            )
        except Exception:  # a bug: answer it as uvicorn would, keep the connection's order
            log.exception("ingest failed")
            outcome = 500, _INTERNAL
        if isinstance(outcome, Accepted):
            accepted = outcome
            accepted.done.add_done_callback(lambda _f: self._committed(cycle, accepted))
        else:
            # Not from here: the answer starts the next pipelined request, which may be
            # answered at once too; a call per request would recurse without limit.
            self.loop.call_soon(self._reply, cycle, *outcome)

    def _committed(self, cycle: RequestResponseCycle, accepted: Accepted) -> None:
        try:
            answer = self.endpoint.finish(accepted)
        except Exception:  # a bug: the request still gets its one answer
            log.exception("ingest answer failed")
            answer = 500, _INTERNAL
        self._reply(cycle, *answer)

    def _reply(self, cycle: RequestResponseCycle, status: int, body: bytes) -> None:
        """Write the whole response and hand the connection back to uvicorn's cycle logic."""
        cycle.response_started = True
        cycle.response_complete = True
        # As uvicorn's ASGI runner does: leave no cycle -> protocol reference behind.
        on_response, cycle.on_response = cycle.on_response, _nothing
        if cycle.disconnected:  # the phone went away before the commit: nothing to write
            return
        head = [STATUS_LINE[status]]
        for name, value in cycle.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head.append(b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body))
        if not cycle.keep_alive:
            head.append(b"connection: close\r\n")
        head.append(b"\r\n")
        if cycle.scope["method"] != "HEAD":
            head.append(body)
        cycle.transport.write(b"".join(head))
        cycle.message_event.set()
        if not cycle.keep_alive:
            cycle.transport.close()
        elif cycle.flow.write_paused:
            # The client is not reading its answers: take no more requests (uvicorn's
            # `send` waits likewise) until its socket drains or closes.
            cycle.flow.pause_reading()
            task = self.loop.create_task(_after_drain(cycle.flow, on_response))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)
            return
        on_response()


async def _after_drain(flow: FlowControl, then: Callable[[], None]) -> None:
    await flow.drain()  # also returns when the connection is lost
    then()


def _nothing() -> None:
    return None


def protocol_for(endpoint: IngestEndpoint, guard: Guard) -> type[HubHttpProtocol]:
    """The main port's protocol class with the phone fast path (needs AVAILABLE)."""
    cls = type("HubIngestProtocol", (IngestHttpProtocol,), {"endpoint": endpoint})
    return protocol_class(cls, guard)


def plain_protocol(guard: Guard) -> type[HubHttpProtocol]:
    """The main port's protocol class without the fast path: every request through ASGI."""
    return protocol_class(HubHttpProtocol, guard)
