"""Phone latency while WSI logins flood the hub (issue 17: an auth flood slowed phones).

    python bench/auth_flood.py     # about a minute; prints a table, then `RATIO auth_flood <x>`

A real `callhook serve` (not pinned: Argon2 runs in threads) takes phone GETs at a steady
rate (`Off Hook`, Connection: close, one socket each, as phones send them) for a quiet
phase, then again while WSI clients on 200 source addresses keep logging in with wrong
passwords (each a real Argon2 check: every address stays under its per-source limit, each
account is new). Run once with `[auth] hash_concurrency = 1` (the default) and once with 4
(what the hub had before). RATIO auth_flood = phone p99 under the flood ÷ quiet p99, with
the default; lower is better (1.0: the flood costs phones nothing).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import free_port, start, stop, wait_http

RATE = 200  # phone requests per second
SECONDS = 8.0
FLOODERS = 64  # WSI clients logging in at once
SOURCES = 200  # their source addresses, 127.1.x.y


CONFIG = """
[server]
listen = "127.0.0.1:{port}"
wsi_listen = "127.0.0.1:{wsi}"
database = "sqlite:///{db}"
admin_key = "bench-admin-key-0123456789"
durability = "normal"
log_level = "error"

[auth]
hash_concurrency = {concurrency}
wsi_max_failures_per_source = 1000000
wsi_max_failures_per_account = 1000000

[[tenant]]
name = "acme"
domain = "acme.example.com"
ingest_token = "gs-bench-token"

[[tenant.extension]]
number = "101"
password = "secret-101"
"""


async def phone(port: int) -> float:
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /token=gs-bench-token&event=Off%20Hook&mac=000B82112233&local=101 HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nUser-Agent: Grandstream GXP2170\r\nConnection: close\r\n\r\n"
    )
    data = await reader.read()
    writer.close()
    if not data.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(data[:200])
    return time.perf_counter() - t0


async def phones(port: int) -> list[float]:
    tasks = []
    t0 = time.perf_counter()
    for i in range(int(RATE * SECONDS)):
        await asyncio.sleep(max(0.0, t0 + i / RATE - time.perf_counter()))
        tasks.append(asyncio.create_task(phone(port)))
    return list(await asyncio.gather(*tasks))


async def flooder(wsi: int, n: int, stop_at: float, counts: list[int]) -> None:
    i = n
    while time.monotonic() < stop_at:
        source = f"127.1.{i % SOURCES // 250}.{i % SOURCES % 250 + 1}"
        try:
            async with connect(
                f"ws://127.0.0.1:{wsi}/", compression=None, local_addr=(source, 0)
            ) as ws:
                auth = {
                    "command": "auth",
                    "extension": "101",
                    "domain": "acme",
                    "password": f"x{i}",
                }
                await ws.send(json.dumps(auth))
                await ws.recv()
                counts[0] += 1
        except OSError:
            pass
        i += FLOODERS


async def flood_main(wsi: int, seconds: float) -> None:
    """The flood, in a process of its own so that it does not slow the phones' client."""
    counts = [0]
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(flooder(wsi, n, stop_at, counts) for n in range(FLOODERS)))
    print(counts[0])


def measure(port: int, wsi: int, flood: bool) -> tuple[list[float], int]:
    proc = None
    if flood:
        cmd = [sys.executable, __file__, "--flood", str(wsi), str(SECONDS + 2)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(1.5)  # the flood is on before phones are measured
    latencies = asyncio.run(phones(port))
    logins = 0
    if proc is not None:
        out, _ = proc.communicate(timeout=60)
        logins = int(out.strip() or 0)
    return latencies, logins


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100)[98] * 1000


def run(concurrency: int) -> tuple[float, float, int]:
    work = Path(tempfile.mkdtemp(prefix="callhook-authflood-"))
    port, wsi = free_port(), free_port()
    cfg = work / "callhook.toml"
    cfg.write_text(CONFIG.format(port=port, wsi=wsi, db=work / "hub.db", concurrency=concurrency))
    proc = start([sys.executable, "-m", "callhook.cli", "serve", "--config", str(cfg)], cpu=None)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        quiet, _ = measure(port, wsi, flood=False)
        loud, logins = measure(port, wsi, flood=True)
    finally:
        stop(proc)
    return p99(quiet), p99(loud), logins


def main() -> None:
    rows = []
    for concurrency in (1, 4):
        quiet, loud, logins = run(concurrency)
        rows.append((concurrency, quiet, loud, logins))
    print(f"phones: {RATE}/s for {SECONDS:.0f} s; flood: {FLOODERS} WSI clients, wrong passwords")
    print("| hash_concurrency | quiet p99 ms | flood p99 ms | logins checked in the flood |")
    print("| --- | --- | --- | --- |")
    for concurrency, quiet, loud, logins in rows:
        print(f"| {concurrency} | {quiet:.1f} | {loud:.1f} | {logins} |")
    print(f"RATIO auth_flood {rows[0][2] / rows[0][1]:.2f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--flood"]:
        asyncio.run(flood_main(int(sys.argv[2]), float(sys.argv[3])))
    else:
        main()
