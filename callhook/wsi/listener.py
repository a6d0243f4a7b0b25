"""The WSI listener: an `asyncio.Protocol` per connection, no ASGI, no task per connection.

websockets' sans-I/O `ServerProtocol` does the opening handshake and parses what the client
sends (masking, fragments, control frames, close handshake). Events go the other way
without it: their frames are encoded once per event (`frames.text_frame`) and the same
bytes are handed to every subscriber's transport. Writes made while one loop iteration
publishes are coalesced per connection and flushed with one `writelines` (one syscall).

The byte budget per connection is the transport's write buffer plus what waits to be
flushed, whatever it holds (events, replies, replayed events, snapshots, pongs); over
`max_queue_bytes` the client is closed with 1013 and where to resume.

The same class carries `/ws` on the main port: the HTTP protocol hands the upgraded
connection over (http_protocol.py), so both carriers behave alike.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import termios
from typing import TYPE_CHECKING, Any, cast

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import SEND_EOF, State
from websockets.server import ServerProtocol

from callhook.errors import error_json
from callhook.wsi.frames import PING, text_frame
from callhook.wsi.session import INVALID_DATA, POLICY, Outgoing, Session

if TYPE_CHECKING:
    from callhook.wsi.service import WsiService

# The hard limit websockets enforces (close 1009). Messages between 64 KiB and this get an
# error reply and the connection stays open.
HARD_MAX_MESSAGE = 1024 * 1024
CLOSE_TIMEOUT = 5.0
_HIGH_WATER = 64 * 1024  # replay pauses above this many unsent bytes

_BUSY = error_json("unavailable", "too many connections; try again later")
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_BUSY), _BUSY)
)
_ws_log = logging.getLogger("callhook.wsi.websockets")
_ws_log.setLevel(logging.WARNING)  # websockets logs every open/close at INFO


class WsiConnection(Session, asyncio.Protocol):
    """One raw WSI connection (plain TCP or TLS)."""

    __slots__ = (
        "close_timer",
        "counted",
        "handshake_timer",
        "partial",
        "partial_text",
        "pending",
        "pending_bytes",
        "pinged",
        "proto",
        "rx",
        "transport",
        "writable",
    )

    transport: asyncio.Transport  # set by connection_made, before anything else runs

    def __init__(self, service: WsiService, *, counted: bool = False) -> None:
        """`counted`: the connection was admitted already (handed over by the HTTP port)."""
        super().__init__(service, "")
        self.counted = counted
        self.proto = ServerProtocol(max_size=HARD_MAX_MESSAGE, logger=_ws_log)
        self.pending: list[bytes] | None = None
        self.pending_bytes = 0
        self.partial: list[bytes] | None = None
        self.partial_text = False
        self.rx = False
        self.pinged = False
        self.writable: asyncio.Future[None] | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.handshake_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        peer: Any = transport.get_extra_info("peername")
        self.address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self.counted:
            if self.service.limits.admit(self.transport, self.address) is not None:
                self.closed = True
                self.transport.write(_UNAVAILABLE)
                self.transport.close()
                return
            self.counted = True
            # The opening handshake gets as long as an HTTP request's headers (17.2).
            self.handshake_timer = asyncio.get_running_loop().call_later(
                self.service.header_timeout, self._handshake_expired
            )
        self.transport.set_write_buffer_limits(high=_HIGH_WATER)
        self.service.sessions.add(self)

    def _handshake_expired(self) -> None:
        self.handshake_timer = None
        if self.proto.state is State.CONNECTING and not self.transport.is_closing():
            self.service.limits.shed("header_timeout", self.address)
            self.forget()
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handshake_timer is not None:
            self.handshake_timer.cancel()
        if self.counted:
            self.service.limits.release(self.transport)
        self.forget()
        if self.close_timer is not None:
            self.close_timer.cancel()
        self._wake()

    def pause_writing(self) -> None:
        pass  # replay polls the buffer size in wait_writable()

    def resume_writing(self) -> None:
        self._wake()

    def data_received(self, data: bytes) -> None:
        if self.closed and self.close_timer is None:  # refused at connection_made
            return
        proto = self.proto
        proto.receive_data(data)
        for item in proto.events_received():
            if isinstance(item, Frame):
                self._frame(item)
            elif isinstance(item, Request):
                if self.handshake_timer is not None:
                    self.handshake_timer.cancel()
                    self.handshake_timer = None
                if self.service.proxies:
                    raw = [
                        (k.encode("latin-1"), v.encode("latin-1"))
                        for k, v in item.headers.raw_items()
                    ]
                    self.address = self.service.proxies.client(self.address, raw)
                proto.send_response(proto.accept(item))
        self._flush_proto()

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._flush_proto()
        return None

    # incoming --------------------------------------------------------------------------
    def _frame(self, frame: Frame) -> None:
        op = frame.opcode
        data = frame.data if isinstance(frame.data, bytes) else bytes(frame.data)
        if op is Opcode.TEXT or op is Opcode.BINARY:
            if frame.fin:
                self._message(op is Opcode.TEXT, data)
            else:
                self.partial = [data]
                self.partial_text = op is Opcode.TEXT
        elif op is Opcode.CONT and self.partial is not None:
            self.partial.append(data)
            if frame.fin:
                message, self.partial = b"".join(self.partial), None
                self._message(self.partial_text, message)
        elif op is Opcode.PONG:
            self.rx = True  # only an answer to our ping shows the client reads what we send
        elif op is Opcode.CLOSE:
            self.forget()  # the client is leaving: stop routing to it now

    def _message(self, text: bool, data: bytes) -> None:
        if text:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:  # RFC 6455 §8.1: fail the connection, 1007
                self.service.invalid_utf8.inc()
                self.close(INVALID_DATA, "invalid UTF-8 in a text frame")
                return
        self.on_message(data)

    def _flush_proto(self) -> None:
        """Send what websockets produced: handshake response, pongs, close, EOF."""
        for chunk in self.proto.data_to_send():
            if chunk == SEND_EOF:
                self._flush()
                self.transport.close()
            else:
                self._write(chunk)
        if self.proto.state is State.CLOSED:
            self.transport.close()

    # outgoing --------------------------------------------------------------------------
    def _write(self, frame: bytes) -> None:
        """Replies, replayed events, pongs, pings: within the same budget as live events."""
        if self.pending is not None:  # keep order behind coalesced event frames
            self.pending.append(frame)
            self.pending_bytes += len(frame)
        elif not self.transport.is_closing():
            self.transport.write(frame)
        else:
            return
        if (
            not self.closed
            and self.pending_bytes + self.transport.get_write_buffer_size()
            > self.service.max_queue_bytes
        ):
            self.close_slow(self.last_seq + 1)

    def _flush(self) -> None:
        pending = self.pending
        if pending is None:
            return
        self.pending = None
        self.pending_bytes = 0
        transport = self.transport
        if transport.is_closing():
            return
        if len(pending) == 1:
            transport.write(pending[0])
        else:
            transport.writelines(pending)

    def send(self, payload: bytes) -> None:
        if self.proto.state is State.OPEN:
            self._write(text_frame(payload))

    def deliver(self, out: Outgoing) -> bool:
        if self.replay is not None:
            return self.hold(out)
        # The hot path: no call into the transport here. The transport's own buffer is
        # checked once per flush (flush_checked); this bounds what waits for that flush.
        if self.pending_bytes > self.service.max_queue_bytes:
            return False
        frame = out.frame
        if self.pending is None:
            self.pending = [frame]
            self.service.dirty.append(self)
        else:
            self.pending.append(frame)
        self.pending_bytes += len(frame)
        self.last_seq = out.event.seq
        return True

    def flush_checked(self) -> None:
        """Flush coalesced frames; a client whose unread bytes exceed the budget is closed.

        Everything written so far still precedes the close frame, so it resumes after the
        last event written.
        """
        self._flush()
        if self.transport.get_write_buffer_size() > self.service.max_queue_bytes:
            self.close_slow(self.last_seq + 1)

    async def wait_writable(self) -> None:
        transport = self.transport
        while (
            not self.closed and transport.get_write_buffer_size() + self.pending_bytes > _HIGH_WATER
        ):
            self.writable = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.writable, 1.0)  # also re-checks now and then
            except TimeoutError:
                pass
            finally:
                self.writable = None

    def _wake(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)

    def close(self, code: int, reason: str) -> None:
        """Close handshake: flush, send the close frame, give the client a moment, abort."""
        if self.close_timer is not None:
            return
        self.forget()
        self._flush()
        if self.proto.state is State.OPEN:
            self.proto.send_close(code, reason[:120])
            self._flush_proto()
        else:
            self.transport.close()
        self.close_timer = asyncio.get_running_loop().call_later(
            CLOSE_TIMEOUT, self.transport.abort
        )

    def _unsent(self) -> int:
        """Bytes not yet taken by the client: ours, the transport's, and the kernel's."""
        n = self.pending_bytes + self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            try:  # SIOCOUTQ: what sits in the socket's send queue, unacknowledged
                n += struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            except (OSError, ValueError):
                pass
        return n

    def tick(self) -> None:
        """Shared timer: drop half-open handshakes and silent clients, ping idle ones."""
        if self.proto.state is not State.OPEN:
            if self.proto.state is State.CONNECTING and self.ticks >= 1:
                self.transport.abort()
            self.ticks += 1
            return
        super().tick()
        if self.rx:
            self.rx = False
            self.pinged = False
        elif self.pinged:
            if self._unsent():
                self.close_slow(self.last_seq + 1)  # silent behind its own backlog: too slow
            else:
                self.close(POLICY, "ping timeout")
        else:
            self.pinged = True
            self._write(PING)
