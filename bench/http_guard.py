"""What the main port's limits cost per request (callhook/http_protocol.py), in-process.

The same phone GET is fed to uvicorn's httptools protocol and to the hub's bounded one
(header limit, timeouts, connection caps, request-line mending), both with the ASGI app
left out, on a fake transport: a new connection per request (as most phones send) and
kept-alive. Best of several rounds, so a busy machine shows less.

    python bench/http_guard.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from bench.common import table
from callhook.connections import ConnectionLimits
from callhook.http_protocol import Guard, HubHttpProtocol, protocol_class

REQUEST = (
    b"GET /token=bench-token&event=Incoming%20Call&mac=000B82110101&local=101"
    b"&remote=0711000001&call_id=b-1&duration=12 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
)
ROUNDS = 15
PER_ROUND = 3000


class _Transport:
    """Just what the protocols call."""

    def __init__(self) -> None:
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 5555), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _no_app(self: Any, cycle: Any, app: Any) -> None:
    pass  # the request is parsed and routed up to the app: that is what differs


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


async def main() -> None:
    config = Config(app=_app, http="httptools", lifespan="off", log_config=None)
    config.load()
    state = ServerState()
    loop = asyncio.get_running_loop()
    plain = type("Plain", (HttpToolsProtocol,), {"_start_asgi_task": _no_app})
    guard = Guard(ConnectionLimits(10**6, 10**6), 16_384, 10.0, 10.0, 60.0)
    bounded = protocol_class(
        type("Bounded", (HubHttpProtocol,), {"_start_asgi_task": _no_app}), guard
    )
    best: dict[tuple[str, str], float] = {}
    for _ in range(ROUNDS):
        for name, cls in (("uvicorn httptools", plain), ("callhook bounded", bounded)):
            started = time.perf_counter()
            for _ in range(PER_ROUND):
                p: Any = cls(config, state, {}, _loop=loop)
                p.connection_made(_Transport())
                p.data_received(REQUEST)
                p.connection_lost(None)
            new = (time.perf_counter() - started) / PER_ROUND * 1e6
            p = cls(config, state, {}, _loop=loop)
            p.connection_made(_Transport())
            started = time.perf_counter()
            for _ in range(PER_ROUND):
                p.data_received(REQUEST)
                p.cycle.response_complete = True
                p.on_response_complete()
            kept = (time.perf_counter() - started) / PER_ROUND * 1e6
            p.connection_lost(None)
            for key, value in (((name, "new"), new), ((name, "kept"), kept)):
                best[key] = min(best.get(key, 1e9), value)
    rows = [
        (name, f"{best[(name, 'new')]:.1f}", f"{best[(name, 'kept')]:.1f}")
        for name in ("uvicorn httptools", "callhook bounded")
    ]
    print(
        table("µs per phone GET, app left out", ["protocol", "new connection", "kept alive"], rows)
    )
    ratio = best[("uvicorn httptools", "new")] / best[("callhook bounded", "new")]
    print(f"RATIO http_guard {ratio:.3f}")


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(main())
    else:
        uvloop.run(main())
