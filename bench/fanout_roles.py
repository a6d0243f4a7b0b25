"""The helper processes of bench/fanout.py, each run as its own process
(`python bench/fanout_roles.py ROLE ARGS`) and pinned to its core:

- `clients`: a swarm of lean RFC 6455 WebSocket clients on `asyncio.Protocol` that parse
  frame headers and count, driven by JSON lines on stdin (connect, expect, record, dump,
  close), answering on stdout;
- `phones`: DND toggles as phone Action URL GETs, open loop at a rate;
- `broadcast`: a bare `websockets` server that broadcast()s a burst on request (the
  baseline).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import struct
import sys
import time
from array import array
from pathlib import Path
from typing import Any

SERVER_CPU, CLIENT_CPU = 0, 1
TENANT, PASSWORD, TOKEN = "bench", "bench-secret", "bench-token"
EXTENSIONS = [str(n) for n in range(1000, 2000)]
_SEQ = re.compile(rb'"seq":(\d+)')


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def save_pairs(path: str, a: array[int], b: array[float]) -> None:
    Path(path).write_bytes(a.tobytes() + b"|" + b.tobytes())


# -- lean WebSocket client ------------------------------------------------------------------
def masked(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = (
        struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        if n < 126
        else struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    )
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Swarm:
    """Many lean WebSocket clients in one process; counts (and optionally records) events."""

    def __init__(self) -> None:
        self.events = 0
        self.ready = 0
        self.conns: list[Lean] = []
        self.recording = False
        self.seqs = array("q")
        self.times = array("d")
        self.changed = asyncio.Event()

    def frame(self, payload: bytes) -> None:
        self.events += 1
        if self.recording:
            m = _SEQ.search(payload)
            if m:
                self.seqs.append(int(m.group(1)))
                self.times.append(time.monotonic())
        self.changed.set()


class Lean(asyncio.Protocol):
    """Handshake, send commands, then parse frames just enough to count them."""

    def __init__(self, swarm: Swarm, port: int, commands: list[bytes]) -> None:
        self.swarm = swarm
        self.port = port
        self.commands = commands
        self.replies = len(commands)
        self.buf = b""
        self.open = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            assert buf.startswith(b"HTTP/1.1 101"), buf[:80]
            self.open, buf = True, buf[end + 4 :]
            assert self.transport is not None
            self.transport.writelines([masked(c) for c in self.commands])
            if not self.commands:
                self.swarm.ready += 1
                self.swarm.changed.set()
        pos, n = 0, len(buf)
        while n - pos >= 2:
            op, ln, hl = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln, hl = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln, hl = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < hl + ln:
                break
            payload = buf[pos + hl : pos + hl + ln]
            pos += hl + ln
            if op == 0x1:
                if self.replies:
                    assert payload.startswith(b'{"status":0'), payload
                    self.replies -= 1
                    if not self.replies:
                        self.swarm.ready += 1
                        self.swarm.changed.set()
                else:
                    self.swarm.frame(payload)
            elif op == 0x9 and self.transport is not None:
                self.transport.write(masked(payload, 0xA))
        self.buf = buf[pos:]


async def connect_many(swarm: Swarm, port: int, plans: list[list[bytes]]) -> None:
    loop = asyncio.get_running_loop()
    target = swarm.ready + len(plans)
    gate = asyncio.Semaphore(200)

    async def one(commands: list[bytes]) -> None:
        async with gate:
            _, proto = await loop.create_connection(
                lambda: Lean(swarm, port, commands), "127.0.0.1", port
            )
            swarm.conns.append(proto)

    await asyncio.gather(*(one(p) for p in plans))
    await wait_for(swarm, lambda: swarm.ready >= target, 120)


async def wait_for(swarm: Swarm, cond: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not cond():
        swarm.changed.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"waited {within}s; events={swarm.events} ready={swarm.ready}")
        try:
            await asyncio.wait_for(swarm.changed.wait(), left)
        except TimeoutError:
            pass


async def clients_main() -> None:
    """Role `clients`: a swarm driven by JSON lines on stdin, answering on stdout."""
    pin(CLIENT_CPU)
    raise_nofile()
    swarm = Swarm()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)  # connect plans are long lines
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(**msg: Any) -> None:
        print(json.dumps(msg), flush=True)

    while line := await reader.readline():
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "connect":
            await connect_many(swarm, cmd["port"], [[c.encode() for c in p] for p in cmd["plans"]])
            say(ready=swarm.ready)
        elif op == "expect":
            target = cmd["events"]
            await wait_for(swarm, lambda t=target: swarm.events >= t, cmd.get("timeout", 120))
            say(events=swarm.events)
        elif op == "record":
            swarm.recording, swarm.events = True, 0
            del swarm.seqs[:], swarm.times[:]
            say(ok=True)
        elif op == "dump":
            save_pairs(cmd["path"], swarm.seqs, swarm.times)
            say(n=len(swarm.seqs))
        elif op == "close":
            for c in swarm.conns:
                if c.transport is not None:
                    c.transport.close()
            swarm.conns.clear()
            swarm.ready = swarm.events = 0
            swarm.recording = False
            say(ok=True)


# -- phones ---------------------------------------------------------------------------------
class PhoneRequest(asyncio.Protocol):
    def __init__(self, request: bytes, done: asyncio.Future[bytes]) -> None:
        self.request, self.done = request, done
        self.chunks: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(b"".join(self.chunks))


async def phones_main(port: int, count: int, rate: float, start: int, out: str) -> None:
    """Role `phones`: DND toggles as Action URL GETs, open loop at `rate` (0: 64 at a time).

    Request number n (counted across runs from `start`) goes to extension n mod 1000 and
    turns DND on when n // 1000 is even, off otherwise: every request changes presence, so
    each yields exactly one canonical event.
    """
    pin(CLIENT_CPU)
    loop = asyncio.get_running_loop()
    seqs, starts = array("q"), array("d")
    gate = asyncio.Semaphore(64 if rate == 0 else 1000)
    events = 0

    async def one(i: int) -> None:
        nonlocal events
        n = start + i
        ext = EXTENSIONS[n % len(EXTENSIONS)]
        event = "DND%20On" if (n // len(EXTENSIONS)) % 2 == 0 else "DND%20Off"
        request = (
            f"GET /token={TOKEN}&event={event}&mac=00155D{int(ext):06X}&local={ext} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        ).encode()
        async with gate:
            started = time.monotonic()
            done: asyncio.Future[bytes] = loop.create_future()
            await loop.create_connection(lambda: PhoneRequest(request, done), "127.0.0.1", port)
            raw = await done
        body = json.loads(raw.partition(b"\r\n\r\n")[2] or b"{}")
        if body.get("events"):
            events += len(body["events"])
            seqs.append(int(body["seq"]))
            starts.append(started)

    began = time.monotonic()
    tasks = []
    for i in range(count):
        if rate:
            delay = began + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > 2.0:
                break  # more than 2 s behind: the hub (or this CPU) cannot keep up; stop
        tasks.append(loop.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - began
    save_pairs(out, seqs, starts)
    print(json.dumps({"events": events, "elapsed": elapsed, "sent": len(tasks)}), flush=True)


# -- servers --------------------------------------------------------------------------------
async def broadcast_main(port: int) -> None:
    """Role `broadcast`: a bare websockets server that broadcast()s a burst on request."""
    from websockets.asyncio.server import broadcast, serve

    pin(SERVER_CPU)
    raise_nofile()
    conns: set[Any] = set()

    async def handler(ws: Any) -> None:
        conns.add(ws)
        try:
            await ws.wait_closed()
        finally:
            conns.discard(ws)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None):
        print(json.dumps({"listening": port}), flush=True)
        while line := await reader.readline():
            cmd = json.loads(line)
            payload = cmd["payload"].encode()
            for i in range(cmd["events"]):
                broadcast(conns, payload, text=True)
                if i % 20 == 19:
                    await asyncio.sleep(0)  # let the loop flush, as a real server would
            print(json.dumps({"sent": cmd["events"], "to": len(conns)}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=["clients", "broadcast", "phones"])
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    if ns.role == "clients":
        run(clients_main())
    elif ns.role == "broadcast":
        run(broadcast_main(int(ns.args[0])))
    else:
        port, count, rate, start, out = ns.args
        run(phones_main(int(port), int(count), float(rate), int(start), out))
