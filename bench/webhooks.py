"""Webhook delivery throughput and endpoint isolation, as ratios measured in one run.

(a) raw aiohttp POSTs (a JSON event body) to a local sink at concurrency 100; (b) the hub
delivering signed, durable JSON webhooks for ingested phone events to 10 endpoints on the
same sink (10 in flight each: concurrency 100 too); (c) the same, one endpoint hanging.
The sink runs on one core, the sender (raw client or hub) on the other. (b) and (c) run
from the first phone request to the last delivery: ingest (HTTP, correlation, the durable
commit with its outbox rows), signing, sending and the attempt log. See bench/README.md.

    python bench/webhooks.py            # or: make bench
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    CLIENT_CPU,
    SERVER_CPU,
    database,
    free_port,
    python,
    start,
    stop,
    table,
    wait_http,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token"
ENDPOINTS = 10
CONCURRENCY = 100
RAW_SECONDS = 2.0
CALLS = 250  # Incoming Call requests per run: 3 events each, to 10 endpoints
# Short rounds of a, b, c back to back; each round gives its own ratios (b/a, c/b), and the
# median across rounds is reported: on a shared machine, measurements adjacent in time see
# the same background load, far apart ones do not.
ROUNDS = 3
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

CONFIG = """
[server]
listen = "127.0.0.1:{port}"
wsi_listen = ""
database = "{database}"
admin_key = "bench"
durability = "full"
allow_private_targets = true
log_level = "warning"
log_format = "json"

[delivery]
max_in_flight_per_endpoint = {per_endpoint}
total_timeout = 2
schedule = [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

[[tenant]]
name = "bench"
domain = "bench.example.com"
ingest_token = "{token}"
{extensions}
{webhooks}
"""

RAW_CLIENT = """
import asyncio, sys, time, aiohttp, uvloop
url, seconds, conc, n_paths = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
body = open(sys.argv[5], "rb").read()
async def main():
    count = 0
    stop_at = time.monotonic() + seconds
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as s:
        async def worker(i):
            nonlocal count
            while time.monotonic() < stop_at:
                async with s.post(f"{url}/hook/{i % n_paths}/", data=body,
                                  headers={"content-type": "application/json"}) as r:
                    await r.read()
                    assert r.status == 200
                count += 1
        t, cpu = time.monotonic(), time.process_time()
        await asyncio.gather(*(worker(i) for i in range(conc)))
        rate = count / (time.monotonic() - t)
        open(sys.argv[6], "w").write(f"{rate} {(time.process_time() - cpu) * 1e6 / count}")
uvloop.run(main())
"""

# A call_start as the hub sends it (wire JSON), for the raw client's body.
SAMPLE_EVENT = {
    "call_id": "b-1", "callee": "sip:101@bench.example.com", "caller": "0711000001",
    "caller_display_name": "", "cdr_id": "819400000000000001", "direction": "inbound",
    "event_type": "call_start", "request_id": "0", "session_id": "819400000000000000",
    "tenant_id": "819300000000000000", "tenant_name": "bench", "time": "1795360000",
    "topic": "extension_events", "seq": 1, "event_id": "819400000000000002",
}  # fmt: skip


def sink_counts(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sink/stats", timeout=5) as r:
        counts: dict[str, int] = json.loads(r.read())["counts"]
        return counts


def program(port: int, how: dict[str, object]) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sink/program",
        data=json.dumps(how).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=5):
        pass


def raw_rate(sink_port: int, tmp: Path) -> tuple[float, float]:
    """Requests/s, and the client process's CPU µs per request."""
    body = tmp / "event.json"
    body.write_bytes(json.dumps(SAMPLE_EVENT).encode())
    script = tmp / "raw_client.py"
    script.write_text(RAW_CLIENT)
    result = tmp / "raw_rate.txt"
    proc = start(
        [python(), str(script), f"http://127.0.0.1:{sink_port}", str(RAW_SECONDS),
         str(CONCURRENCY), str(ENDPOINTS), str(body), str(result)],
        cpu=SERVER_CPU,
    )  # fmt: skip
    _out, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"raw client failed: {err.decode(errors='replace')[-2000:]}")
    rate, cpu = result.read_text().split()
    return float(rate), float(cpu)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ingest(port: int, first: int, calls: int, connections: int = 8) -> None:
    """Incoming Call requests on keep-alive connections, each acknowledged when durable."""
    queue = list(range(first, first + calls))

    async def conn() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                n = queue.pop()
                ext = 100 + n % 50
                target = (
                    f"/token={TOKEN}&event=Incoming%20Call&mac=000B8211{ext:04d}&local={ext}"
                    f"&remote=07{n:08d}&call_id=wh-{n}"
                )
                writer.write(f"GET {target} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
                head = await reader.readuntil(b"\r\n\r\n")
                if int(head.split(b" ", 2)[1]) != 200:
                    raise RuntimeError(f"ingest answered {head[:40]!r}")
                length = [
                    ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")
                ]
                await reader.readexactly(int(length[0].split(b":")[1]) if length else 0)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(conn() for _ in range(connections)))


def delivery_run(
    hub: int, hub_port: int, sink_port: int, first: int, healthy: range
) -> tuple[int, float, float, float]:
    """Ingest CALLS calls; (deliveries to the `healthy` endpoints, seconds from the first
    phone request until the last of them arrived, deliveries/s once ingest was over, the
    hub process's CPU µs per delivery, ingest included)."""
    paths = [f"/hook/{i}/" for i in healthy]
    before = sink_counts(sink_port)

    def delivered() -> int:
        now = sink_counts(sink_port)
        return sum(now.get(p, 0) - before.get(p, 0) for p in paths)

    want = CALLS * 3 * len(paths)  # call_start, target_add, target_ringing per call
    t0, cpu0 = time.monotonic(), cpu_seconds(hub)
    asyncio.run(_ingest(hub_port, first, CALLS, connections=32))
    t_ingested, n_ingested = time.monotonic(), delivered()
    deadline = t0 + 120
    while (done := delivered()) < want:
        if time.monotonic() > deadline:
            raise RuntimeError(f"deliveries stalled: {done} of {want}")
        time.sleep(0.01)
    t_done, cpu = time.monotonic(), cpu_seconds(hub) - cpu0
    drain = (done - n_ingested) / (t_done - t_ingested) if t_done > t_ingested else 0.0
    return done, t_done - t0, drain, cpu * 1e6 / done


def drain(hub_port: int, path: str) -> None:
    """Wait until the endpoint at `path` has nothing pending (the hang's backlog), so it
    does not weigh on the next round."""

    def get(url: str) -> dict[str, Any]:
        req = urllib.request.Request(url, headers={"Authorization": "Bearer bench"})
        with urllib.request.urlopen(req, timeout=10) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    base = f"http://127.0.0.1:{hub_port}/api/v1/tenants/bench/webhooks"
    hook = next(h for h in get(base)["webhooks"] if h["url"].endswith(path))
    deadline = time.monotonic() + 60
    while get(f"{base}/{hook['id']}/deliveries?status=pending&limit=1")["deliveries"]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} did not drain")
        time.sleep(0.2)


def main() -> None:
    raws: list[tuple[float, float]] = []
    runs_b: list[tuple[int, float, float, float]] = []
    runs_c: list[tuple[int, float, float, float]] = []
    hang = f"/hook/{ENDPOINTS - 1}/"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sink_port = free_port()
        sink = start(
            [python(), "-m", "tests.support.sink", str(sink_port)], cpu=CLIENT_CPU, cwd=ROOT
        )
        try:
            wait_http(f"http://127.0.0.1:{sink_port}/_sink/stats", sink)
            port = free_port()
            exts = "\n".join(f'[[tenant.extension]]\nnumber = "{n}"' for n in range(100, 150))
            hooks = "\n".join(
                f'[[tenant.webhook]]\nurl = "http://127.0.0.1:{sink_port}/hook/{i}/"\n'
                f'secret = "{SECRET}"'
                for i in range(ENDPOINTS)
            )
            cfg = tmp / "callhook.toml"
            url, suffix = database(tmp)
            cfg.write_text(
                CONFIG.format(port=port, database=url, token=TOKEN, extensions=exts,
                              webhooks=hooks, per_endpoint=CONCURRENCY // ENDPOINTS)
            )  # fmt: skip
            hub = start([python(), "-m", "callhook.cli", "serve", "--config", str(cfg)],
                        cpu=SERVER_CPU, cwd=tmp)  # fmt: skip
            try:
                wait_http(f"http://127.0.0.1:{port}/readyz", hub)
                warm = sink_counts(sink_port)
                asyncio.run(_ingest(port, 10**6, 50))  # warm-up: connections, caches
                # ... and wait for its deliveries, so they do not overlap the first (a).
                while min(sink_counts(sink_port).get(f"/hook/{i}/", 0) - warm.get(f"/hook/{i}/", 0)
                          for i in range(ENDPOINTS)) < 150:  # fmt: skip
                    time.sleep(0.05)
                for r in range(ROUNDS):
                    # a-b-c, then c-b-a: neither b nor c always follows the same phase
                    for phase in "abc" if r % 2 == 0 else "cba":
                        first = len(runs_b) + len(runs_c)
                        if phase == "a":
                            raws.append(raw_rate(sink_port, tmp))
                        elif phase == "b":
                            runs_b.append(
                                delivery_run(
                                    hub.pid, port, sink_port, first * CALLS, range(ENDPOINTS)
                                )
                            )
                        else:
                            program(sink_port, {"prefix": hang, "hang": True})
                            healthy = range(ENDPOINTS - 1)
                            runs_c.append(
                                delivery_run(hub.pid, port, sink_port, first * CALLS, healthy)
                            )
                            program(sink_port, {"prefix": hang, "clear": True})
                            drain(port, hang)
            finally:
                stop(hub)
        finally:
            stop(sink)

    per_round = []
    for r in range(ROUNDS):
        (a, cpu_a), (nb, tb, drain_b, cpu_b), (nc, tc, _d, _cpu_c) = raws[r], runs_b[r], runs_c[r]
        b, c = nb / tb, nc / tc
        per_round.append(
            (a, b, c, b / a, c / (b * (ENDPOINTS - 1) / ENDPOINTS), drain_b, cpu_a, cpu_b)
        )
    rows = [
        (f"round {r + 1}", f"{a:,.0f}", f"{b:,.0f}", f"{c:,.0f}", f"{w:.2f}", f"{i:.2f}",
         f"{d:,.0f}", f"{ca:.0f}", f"{cb:.0f}")
        for r, (a, b, c, w, i, d, ca, cb) in enumerate(per_round)
    ]  # fmt: skip
    med = [statistics.median(x[k] for x in per_round) for k in range(8)]
    rows.append(("median", f"{med[0]:,.0f}", f"{med[1]:,.0f}", f"{med[2]:,.0f}",
                 f"{med[3]:.2f}", f"{med[4]:.2f}", f"{med[5]:,.0f}", f"{med[6]:.0f}",
                 f"{med[7]:.0f}"))  # fmt: skip
    header = ["", "(a) raw", "(b) hub", "(c) hub, 1 hung", "b/a", "c/b (9 healthy)",
              "(b) after ingest", "(a) CPU µs/req", "(b) CPU µs/delivery"]  # fmt: skip
    title = (
        "webhook delivery, requests/s at the sink: (a) raw aiohttp POSTs, concurrency 100;"
        f" (b) signed durable webhooks for ingested phone events, {ENDPOINTS} endpoints x"
        f" {CONCURRENCY // ENDPOINTS} in flight, first request to last delivery; (c) the"
        " same, one endpoint hanging (its 9 others counted); (b) after ingest: (b)'s rate"
        " once ingest was over (sending and logging only); CPU: the raw client's per"
        " request, the hub process's per delivery (ingest, every thread included)"
    )
    print(table(title, header, rows))
    print(f"RATIO webhooks{suffix} {med[3]:.3f}")
    print(f"RATIO isolation{suffix} {med[4]:.3f}")


if __name__ == "__main__":
    main()
