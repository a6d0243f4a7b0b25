"""WSI test clients: real `websockets` connections to a running hub, plus a barrier.

The barrier (`until_pong`) replaces sleeps: a phone's HTTP response is sent after its events
were committed and handed to the WebSocket fan-out, and the hub answers a `ping` after
everything already queued for that connection. So "send ping, read until pong" returns
exactly the events that reached this subscriber, and proves the absence of the others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import struct
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.support.hub import Hub

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


async def recv_json(ws: ClientConnection, within: float = TIMEOUT) -> dict[str, Any]:
    raw = await asyncio.wait_for(ws.recv(), within)
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


async def until_pong(ws: ClientConnection, within: float = TIMEOUT) -> list[dict[str, Any]]:
    """Everything queued for `ws` before now (events), via a ping barrier."""
    await ws.send('{"command":"ping"}')
    out = []
    while True:
        msg = await recv_json(ws, within)
        if msg == {"status": 0, "pong": True}:
            return out
        out.append(msg)


async def events_until(
    ws: ClientConnection, done: Any, within: float = TIMEOUT
) -> list[dict[str, Any]]:
    """Read events until `done(events)` is true, within a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    out: list[dict[str, Any]] = []
    while not done(out):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"timed out; got {len(out)} events: {out[-3:]}")
        out.append(await recv_json(ws, left))
    return out


async def connect_paused(port: int, path: str = "/") -> Any:
    """A client whose library stops reading the socket as soon as one frame waits unread,
    with a small receive buffer, so that the hub soon has to hold what it does not read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await connect(
        url(port, path), sock=sock, compression=None, max_queue=1, open_timeout=TIMEOUT
    )


class Collector:
    """Reads a connection in the background, so that it never lags behind the hub."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for raw in self.ws:
            self.events.append(json.loads(raw))
            self._changed.set()

    async def wait_seq(self, seq: int, within: float = TIMEOUT) -> list[dict[str, Any]]:
        """Wait until an event with `seq` or later arrived; return all events so far."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not (self.events and self.events[-1].get("seq", 0) >= seq):
            self._changed.clear()
            left = deadline - loop.time()
            if left <= 0 or self._task.done():
                raise AssertionError(f"no seq {seq}; last: {self.events[-1:]}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass
        return self.events

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        await self.ws.close()


class RawClient:
    """A blocking RFC 6455 client on a plain socket that answers nothing by itself.

    For what `websockets` hides on purpose: a peer that never answers pings, and exact
    control over what is (not) read.
    """

    def __init__(self, port: int, path: str = "/", rcvbuf: int = 0) -> None:
        """`rcvbuf`: a small receive buffer, so that not reading soon stops the server."""
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())

    def send_frame(self, opcode: int, payload: bytes) -> None:
        """One final frame, masked as a client must (0x1 text, 0x9 ping, 0xA pong...)."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def recv_frame(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the server (never masked)."""
        while len(self.buf) < 2:
            self._fill()
        opcode, n = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        offset = 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill()
            n, offset = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill()
            n, offset = struct.unpack("!Q", self.buf[2:10])[0], 10
        while len(self.buf) < offset + n:
            self._fill()
        payload, self.buf = self.buf[offset : offset + n], self.buf[offset + n :]
        return opcode, payload

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# A tenant shaped like PortSIP's examples: SIP domain test.com, password 111111, and
# extensions 101, 102, 103 in one group (PortSIP's precondition for its subscribe example).
SEED_TENANT = """
[[tenant]]
name = "sipiw"
password = "111111"
domain = "test.com"
ingest_token = "sp-0001"

[[tenant.extension]]
number = "101"
password = "111111"
groups = ["team"]

[[tenant.extension]]
number = "102"
password = "secret102"
groups = ["team"]

[[tenant.extension]]
number = "103"
password = "secret103"
groups = ["team"]

[[tenant.extension]]
number = "104"
password = "secret104"
groups = ["other"]

[[tenant.queue]]
number = "8001"
members = ["101", "102"]

[[tenant.queue]]
number = "8002"
managers = ["101"]

[[tenant.queue]]
number = "8003"
members = ["104"]

[[tenant.trunk]]
name = "carrier1"
"""


WSI_CONFIG = (
    SEED_TENANT
    + """
[wsi]
max_queue_bytes = 16384   # a reader that stops is soon over budget
ping_interval = 0.2       # idle and unauthenticated connections are handled quickly
"""
)


_hub: Hub | None = None


def session_hub(request: pytest.FixtureRequest) -> Hub:
    """One hub for every WSI test module: the test tenants plus the PortSIP-shaped one.

    Started on first use and stopped when the test session ends. Test modules wrap it in
    a small `wsi_hub` fixture.
    """
    global _hub
    if _hub is None or not _hub.alive():
        workdir = request.getfixturevalue("tmp_path_factory").mktemp("wsi")
        _hub = Hub(Path(workdir), extra_config=WSI_CONFIG).start()
        request.config.add_cleanup(_hub.stop)
    return _hub


# PortSIP's example commands, byte for byte (its Pub/Sub guide, "Subscribe and unsubscribe").
SEED_AUTH_EXTENSION = (
    '{\n"command":"auth",\n"extension":"101",\n"domain":"test.com",\n"password":"111111"\n}'
)
SEED_AUTH_TENANT = '{\n"command" : "auth",\n"name": "tenant name",\n"password": "111111"\n}'
SEED_SUBSCRIBE_EXTENSIONS = '{\n"command":"subscribe",\n"topics":[\n { \n "topic" : "extension_events",\n "keys": ["extension_register", "call_start", "call_fail", "call_reroute", "call_noanswer", "call_hold", "call_unhold", "call_ended", "call_established", "target_add", "target_fail", "target_noanswer", "target_ringing", "target_ended"] \n } \n],\n"extensions":[\n"102",\n"103"] \n}'  # noqa: E501
SEED_SUBSCRIBE_EXTENSIONS_AND_CDR = '{\n"command":"subscribe",\n"topics":[\n { \n "topic" : "extension_events",\n "keys":["extension_register", "call_start", "call_fail", "call_reroute", "call_noanswer", "call_hold", "call_unhold", "call_ended", "call_established", "target_add", "target_fail", "target_noanswer", "target_ringing", "target_ended"] \n},\n { \n "topic" : "cdr_events",\n "keys":["call_cdr"] \n } \n],\n"extensions":[\n"102",\n"103"]  \n}'  # noqa: E501
SEED_UNSUBSCRIBE_EXTENSIONS_AND_CDR = '{\n"command":"unsubscribe",\n"topics":[\n { \n "topic" : "extension_events",\n "keys":["extension_register", "call_start", "call_fail", "call_reroute", "call_noanswer", "call_hold", "call_unhold", "call_ended", "call_established", "target_add", "target_fail", "target_noanswer", "target_ringing", "target_ended"] \n},\n { \n "topic" : "cdr_events",\n "keys":["call_cdr"] \n } \n],\n"extensions":[\n"102",\n"103"]  \n}'  # noqa: E501
SEED_UNSUBSCRIBE_CDR = '{\n"command":"unsubscribe",\n"topics":[\n { \n "topic" : "cdr_events",\n "keys":["call_cdr"] \n } \n] \n}'  # noqa: E501
SEED_SUBSCRIBE_QUEUES = '{\n"command":"subscribe",\n"topics":[\n { \n "topic" : "queue_events",\n "keys":["queue_status"] \n } \n],\n"queues":[\n"8001",\n"8002"]  \n}'  # noqa: E501
SEED_SUBSCRIBE_TRUNKS = '{\n"command":"subscribe",\n"topics":[\n { \n "topic" : "trunk_events",\n "keys":["trunk_connected", "trunk_disconnected"] \n } \n] \n}'  # noqa: E501
SEED_OK = '{"status":0}'
SEED_AUTH_ERROR = '{"error":"name or password error","status":-1}'
