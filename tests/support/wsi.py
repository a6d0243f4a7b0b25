"""WSI test clients: real `websockets` connections to a running hub, plus a barrier.

The barrier (`until_pong`) replaces sleeps: a phone's HTTP response is sent after its events
were committed and handed to the WebSocket fan-out, and the hub answers a `ping` after
everything already queued for that connection. So "send ping, read until pong" returns
exactly the events that reached this subscriber, and proves the absence of the others.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

TIMEOUT = 10.0

ALL_EXTENSION_KEYS = [
    "extension_register",
    "call_start",
    "call_fail",
    "call_reroute",
    "call_noanswer",
    "call_hold",
    "call_unhold",
    "call_ended",
    "call_established",
    "target_add",
    "target_fail",
    "target_noanswer",
    "target_ringing",
    "target_ended",
]


def url(port: int, path: str = "/", scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{port}{path}"


async def open_ws(port: int, path: str = "/", ssl_context: ssl.SSLContext | None = None) -> Any:
    scheme = "wss" if ssl_context is not None else "ws"
    return await connect(
        url(port, path, scheme), compression=None, ssl=ssl_context, open_timeout=TIMEOUT
    )


async def recv_json(ws: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    msg = json.loads(raw)
    assert isinstance(msg, dict), msg
    return msg


async def send_raw(ws: ClientConnection, text: str | bytes) -> str | bytes:
    """Send one frame exactly as given; return the raw reply frame."""
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def call(ws: ClientConnection, cmd: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(cmd))
    return await recv_json(ws)


async def login(port: int, path: str = "/", **auth: str) -> ClientConnection:
    """Open and authenticate (`name=`/`extension=`+`domain=`, `password=`)."""
    ws = await open_ws(port, path)
    reply = await call(ws, {"command": "auth", **auth})
    assert reply == {"status": 0}, reply
    return ws


async def until_pong(ws: ClientConnection, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Everything queued for `ws` before now (events), via a ping barrier."""
    await ws.send('{"command":"ping"}')
    out = []
    while True:
        msg = await recv_json(ws, timeout)
        if msg == {"status": 0, "pong": True}:
            return out
        out.append(msg)


async def events_until(
    ws: ClientConnection, done: Any, timeout: float = TIMEOUT
) -> list[dict[str, Any]]:
    """Read events until `done(events)` is true, within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    out: list[dict[str, Any]] = []
    while not done(out):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out; got {len(out)} events: {out[-3:]}")
        out.append(await recv_json(ws, left))
    return out
