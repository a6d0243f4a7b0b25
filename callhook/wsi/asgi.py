"""`/ws` on the main port: the same WSI sessions, carried by uvicorn's ASGI WebSocket.

Slower than the raw listener (one sender task per connection, text re-framed per client by
uvicorn), which is acceptable for the convenience port; the raw listener is the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from callhook.wsi.session import Outgoing, Session

if TYPE_CHECKING:
    from callhook.wsi.service import WsiService

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_HIGH_WATER = 64 * 1024


class AsgiSession(Session):
    """A WSI session whose bytes go out through ASGI `websocket.send` messages."""

    __slots__ = ("close_with", "outbox", "outbox_bytes", "wakeup", "writable")

    def __init__(self, service: WsiService, address: str) -> None:
        super().__init__(service, address)
        self.outbox: deque[bytes] = deque()
        self.outbox_bytes = 0
        self.wakeup = asyncio.Event()
        self.writable: asyncio.Future[None] | None = None
        self.close_with: tuple[int, str] | None = None

    def send(self, payload: bytes) -> None:
        if self.close_with is None:
            self.outbox.append(payload)
            self.outbox_bytes += len(payload)
            self.wakeup.set()

    def deliver(self, out: Outgoing) -> bool:
        if self.replay is not None:
            return self.hold(out)
        if self.outbox_bytes > self.service.max_queue_bytes:
            return False
        self.send(out.payload)
        self.last_seq = out.event.seq
        return True

    async def wait_writable(self) -> None:
        while not self.closed and self.outbox_bytes > _HIGH_WATER:
            self.writable = asyncio.get_running_loop().create_future()
            try:
                await self.writable
            finally:
                self.writable = None

    def close(self, code: int, reason: str) -> None:
        if self.close_with is None:
            self.forget()
            self.close_with = (code, reason[:120])
            self.wakeup.set()

    def forget(self) -> None:
        super().forget()
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    async def pump(self, send: Send) -> None:
        """The one sender of this connection: outbox in order, then the close frame."""
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.outbox:
                payload = self.outbox.popleft()
                self.outbox_bytes -= len(payload)
                await send({"type": "websocket.send", "text": payload.decode()})
                waiter = self.writable
                if waiter is not None and self.outbox_bytes <= _HIGH_WATER and not waiter.done():
                    waiter.set_result(None)
            if self.close_with is not None:
                code, reason = self.close_with
                await send({"type": "websocket.close", "code": code, "reason": reason})
                return


async def serve(service: WsiService, scope: Scope, receive: Receive, send: Send) -> None:
    """The ASGI app for `/ws` websocket scopes."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    client = scope.get("client")
    session = AsgiSession(service, str(client[0]) if client else "unknown")
    service.sessions.add(session)
    pump = asyncio.create_task(session.pump(send), name="wsi-asgi-pump")
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                text = message.get("text")
                data = text.encode() if text is not None else message.get("bytes") or b""
                session.on_message(data)
            elif kind == "websocket.disconnect":
                break
    finally:
        session.forget()
        if not pump.done():
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump
