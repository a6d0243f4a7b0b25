"""WebSocket fan-out benchmark: cost per delivery, latency under load, memory per connection.

    python bench/fanout.py            # about a minute; prints a table, then `RATIO fanout <x>`
    BENCH_DATABASE=postgresql python bench/fanout.py   # the hub on PostgreSQL: `RATIO fanout_pg`

The server under test runs pinned to CPU 0 (`os.sched_setaffinity` in the server process,
so every thread it starts inherits it); all clients run pinned to CPU 1. Server CPU time is
the sum of the per-thread on-CPU nanoseconds in /proc/<pid>/task/*/schedstat.

1. Fan-out cost: a bare `websockets` server calling `broadcast()` and callhook's WSI listener
   each send a burst of events to 1,000 tenant-wide subscribers. The hub's events are real:
   phone Action URL GETs into a real `callhook serve` (ingest, correlation and the durable
   SQLite commit are all in the hub's CPU time; on PostgreSQL the server's processes' CPU is
   added). RATIO = broadcast µs/delivery ÷ hub µs/delivery.
2. Latency: phones send 2,000 events/s (DND on/off Action URLs, one canonical event each) for
   1,000 extensions; 1,000 subscribers each follow one extension, 10 follow the whole tenant.
   Latency is phone request start -> subscriber receipt, per delivery.
3. Memory: hub RSS growth per idle, authenticated, subscribed connection at 10,000.

Clients are lean RFC 6455 clients on `asyncio.Protocol` that parse frame headers and count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common

SERVER_CPU, CLIENT_CPU = 0, 1
SUBSCRIBERS = 1_000
BURST_EVENTS = 200
LATENCY_RATE = 2_000
LATENCY_SECONDS = 5
IDLE_CONNECTIONS = 10_000
TENANT, PASSWORD, TOKEN = "bench", "bench-secret", "bench-token"
EXTENSIONS = [str(n) for n in range(1000, 2000)]
_SEQ = re.compile(rb'"seq":(\d+)')


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu in os.sched_getaffinity(0):
        os.sched_setaffinity(0, {cpu})


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_ns(pid: int) -> int:
    """On-CPU time of every thread of `pid`, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError):
            pass  # a thread that just ended
    return total


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def hub_commands(subscribe: dict[str, Any]) -> list[str]:
    auth = {"command": "auth", "name": TENANT, "password": PASSWORD}
    return [json.dumps(auth), json.dumps(subscribe)]


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


def hub_config(work: Path, port: int, wsi: int, database: str) -> Path:
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{port}"',
        f'wsi_listen = "127.0.0.1:{wsi}"',
        f'database = "{database}"',
        'admin_key = "bench-admin"',
        'log_level = "warning"',
        # survives a crash of the process; "full" adds an fsync per group commit,
        # which measures the disk (p99 of tens of ms on a busy VM), not the fan-out
        'durability = "normal"',
        'log_format = "json"',
        "",
        # Every client logs in at once from 127.0.0.1: the brute-force limits and the
        # per-source connection cap are for attackers, not for this measurement.
        "[auth]",
        "wsi_max_failures_per_source = 1000000",
        "wsi_max_failures_per_account = 1000000",
        "hash_queue = 100000",
        "[connections]",
        "max_per_source = 100000",
        "",
        "[[tenant]]",
        f'name = "{TENANT}"',
        f'password = "{PASSWORD}"',
        'domain = "bench.example.com"',
        f'ingest_token = "{TOKEN}"',
    ]
    for ext in EXTENSIONS:
        lines += ["[[tenant.extension]]", f'number = "{ext}"']
    path = work / "bench.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- orchestration --------------------------------------------------------------------------
class Role:
    """A helper process speaking JSON lines."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args[2:]} exited ({self.proc.wait()})")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Phones:
    """Runs the phones role; remembers how many requests were sent in total."""

    def __init__(self, port: int, work: Path) -> None:
        self.port, self.work, self.sent = port, work, 0

    def run(self, count: int, rate: float = 0) -> tuple[int, Path, float]:
        out = self.work / f"phones-{self.sent}.bin"
        args = ["phones", str(self.port), str(count), str(rate), str(self.sent), str(out)]
        done = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, check=True
        )
        result = json.loads(done.stdout.strip().splitlines()[-1])
        self.sent += int(result["sent"])
        return int(result["events"]), out, float(result["elapsed"])


def read_pairs(path: Path) -> tuple[array[int], array[float]]:
    raw = path.read_bytes()
    cut = len(raw) // 2  # both arrays have 8-byte items and the same length
    a, b = array("q"), array("d")
    a.frombytes(raw[:cut])
    b.frombytes(raw[cut + 1 :])
    return a, b


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def start_hub(work: Path, database: str) -> tuple[subprocess.Popen[bytes], int, int]:
    port, wsi = free_port(), free_port()
    config = hub_config(work, port, wsi, database)
    log = (work / "hub.log").open("wb")
    hub = subprocess.Popen(
        [sys.executable, "-m", "callhook.cli", "serve", "--config", str(config)],
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: pin(SERVER_CPU),  # before exec: every hub thread inherits it
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return hub, port, wsi
        except OSError:
            time.sleep(0.1)
    hub.kill()
    raise RuntimeError((work / "hub.log").read_text()[-3000:])


def writes(port: int) -> float:
    """The hub's count of coalesced writes to subscribers (callhook_wsi_writes_total)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        m = re.search(rb"^callhook_wsi_writes_total (\S+)$", r.read(), re.M)
    return float(m.group(1)) if m else 0.0


def sample_event(port: int) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/tenants/{TENANT}/events?limit=1",
        headers={"Authorization": "Bearer bench-admin"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.dumps(json.loads(r.read())[0], separators=(",", ":"))


def note(what: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {what}", file=sys.stderr, flush=True)


def main() -> None:
    load = os.getloadavg()[0]
    pin(CLIENT_CPU)
    raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="callhook-fanout-"))
    database, suffix = common.database(work)
    hub, port, wsi = start_hub(work, database)

    def hub_cpu_ns() -> int:  # the hub, and the database server's processes when it has one
        return cpu_ns(hub.pid) + common.database_cpu_ns()

    clients = Role("clients")
    phones = Phones(port, work)
    rows: list[tuple[str, str]] = []
    try:
        phones.run(len(EXTENSIONS))  # warm-up: every phone seen once, presence rows exist
        payload = sample_event(port)
        wide = {"command": "subscribe", "topics": [{"topic": "extension_events"}]}

        # 1a. bare websockets + broadcast()
        note("1a: websockets broadcast()")
        bport = free_port()
        bcast = Role("broadcast", str(bport))
        bcast.read()
        clients.ask(op="connect", port=bport, plans=[[]] * SUBSCRIBERS)
        before = cpu_ns(bcast.proc.pid)
        bcast.ask(events=BURST_EVENTS, payload=payload)
        clients.ask(op="expect", events=BURST_EVENTS * SUBSCRIBERS)
        bcast_us = (cpu_ns(bcast.proc.pid) - before) / 1000 / (BURST_EVENTS * SUBSCRIBERS)
        clients.ask(op="close")
        bcast.stop()

        # 1b. the hub: phone GETs -> ingest -> commit -> WSI fan-out
        note("1b: callhook WSI")
        clients.ask(op="connect", port=wsi, plans=[hub_commands(wide)] * SUBSCRIBERS)
        before, writes_before = hub_cpu_ns(), writes(port)
        events, _, _ = phones.run(BURST_EVENTS)
        clients.ask(op="expect", events=events * SUBSCRIBERS)
        hub_us = (hub_cpu_ns() - before) / 1000 / (events * SUBSCRIBERS)
        per_write = events * SUBSCRIBERS / max(1.0, writes(port) - writes_before)
        clients.ask(op="close")
        rows += [
            ("fan-out: websockets broadcast(), µs CPU/delivery", f"{bcast_us:.2f}"),
            ("fan-out: callhook WSI (incl. ingest+commit), µs CPU/delivery", f"{hub_us:.2f}"),
            (
                "  payload bytes / events / subscribers",
                f"{len(payload)} / {events} / {SUBSCRIBERS}",
            ),
            ("  hub: events per write (coalescing)", f"{per_write:.1f}"),
        ]

        # 2. latency under load: at the target rate, and at a quarter of it (what this
        # machine's client core sustains with room to spare, so the figure is the hub's)
        note("2: latency")
        plans = [hub_commands({**wide, "extensions": [ext]}) for ext in EXTENSIONS] + [
            hub_commands(wide)
        ] * 10
        clients.ask(op="connect", port=wsi, plans=plans)
        for rate in (LATENCY_RATE // 4, LATENCY_RATE):
            clients.ask(op="record")
            before, t0 = hub_cpu_ns(), time.monotonic()
            events, sent_file, elapsed = phones.run(rate * LATENCY_SECONDS, rate)
            clients.ask(op="expect", events=events * 11, timeout=60)
            busy = (hub_cpu_ns() - before) / 1e9 / (time.monotonic() - t0)
            got_file = work / f"received-{rate}.bin"
            clients.ask(op="dump", path=str(got_file))
            sent_seqs, sent_at = read_pairs(sent_file)
            start_of = dict(zip(sent_seqs, sent_at, strict=True))
            got_seqs, got_at = read_pairs(got_file)
            lat = sorted(
                (t - start_of[s]) * 1000
                for s, t in zip(got_seqs, got_at, strict=True)
                if s in start_of
            )
            rows += [
                (
                    f"latency at {rate:,}/s: phone events/s sent (achieved)",
                    f"{events / elapsed:,.0f}",
                ),
                (f"latency at {rate:,}/s: deliveries measured", f"{len(lat):,}"),
                (
                    f"latency at {rate:,}/s: p50 / p99 / max, ms",
                    f"{percentile(lat, 0.5):.1f} / {percentile(lat, 0.99):.1f} / {lat[-1]:.1f}",
                ),
                (f"latency at {rate:,}/s: hub CPU busy", f"{busy:.0%}"),
            ]
        clients.ask(op="close")

        # 3. memory per idle connection
        note("3: memory")
        time.sleep(0.5)
        rss0 = rss_bytes(hub.pid)
        clients.ask(op="connect", port=wsi, plans=[hub_commands(wide)] * IDLE_CONNECTIONS)
        time.sleep(1.0)
        per_conn = (rss_bytes(hub.pid) - rss0) / IDLE_CONNECTIONS
        rows.append(
            (
                f"memory: hub RSS per idle subscriber at {IDLE_CONNECTIONS:,}",
                f"{per_conn / 1024:.1f} KiB",
            )
        )
        clients.ask(op="close")
    finally:
        clients.stop()
        hub.terminate()
        try:
            hub.wait(20)
        except subprocess.TimeoutExpired:
            hub.kill()
        shutil.rmtree(work, ignore_errors=True)

    print(f"callhook fan-out benchmark (server on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU};")
    print("hub events driven by phone Action URL GETs through a real `callhook serve`,")
    where = "PostgreSQL (its server processes' CPU counted as the hub's)" if suffix else "SQLite"
    print(f'durability "normal", {where}; load average at start {load:.1f})')
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    print(f"RATIO fanout{suffix} {bcast_us / hub_us:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("role", nargs="?", default="main")
    parser.add_argument("args", nargs="*")
    ns = parser.parse_args()
    try:
        import uvloop

        run = uvloop.run
    except ImportError:  # pragma: no cover
        run = asyncio.run
    if ns.role == "main":
        main()
    elif ns.role == "clients":
        run(clients_main())
    elif ns.role == "broadcast":
        run(broadcast_main(int(ns.args[0])))
    elif ns.role == "phones":
        port, count, rate, start, out = ns.args
        run(phones_main(int(port), int(count), float(rate), int(start), out))
