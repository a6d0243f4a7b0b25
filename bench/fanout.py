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

Clients, phones and the bare server are helper processes (bench/fanout_roles.py); this
file starts the hub and them, drives them and prints the results.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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
from bench.common import free_port
from bench.fanout_roles import (
    CLIENT_CPU,
    EXTENSIONS,
    PASSWORD,
    SERVER_CPU,
    TENANT,
    TOKEN,
    pin,
    raise_nofile,
)

SUBSCRIBERS = 1_000
BURST_EVENTS = 200
LATENCY_RATE = 2_000
LATENCY_SECONDS = 5
IDLE_CONNECTIONS = 10_000
ROLES = str(Path(__file__).resolve().parent / "fanout_roles.py")  # the helper processes


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


def hub_commands(subscribe: dict[str, Any]) -> list[str]:
    auth = {"command": "auth", "name": TENANT, "password": PASSWORD}
    return [json.dumps(auth), json.dumps(subscribe)]


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
            [sys.executable, ROLES, *args],
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
            [sys.executable, ROLES, *args], capture_output=True, text=True, check=True
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
    main()
