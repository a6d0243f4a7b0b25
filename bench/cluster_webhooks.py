"""Webhooks through a cluster: two real nodes on one PostgreSQL and one redis-server, vs one
PostgreSQL node, delivering the same calls to the same sink.

    python bench/cluster_webhooks.py        # about 40 s; prints a table

CALLS `Incoming Call` Action URLs (3 events each) go from 16 phones, alternating between
the nodes, to a tenant with ENDPOINTS signed JSON webhooks on one counting sink (a separate
process, `tests/support/sink.py`). The rate is deliveries ÷ seconds from the first phone
request to the last delivery; then the run waits 2 s more and counts what the sink got
beyond one request per (event, endpoint): duplicates (there should be none while every
node stays up). The single node is the same hub on a database of its own, no bus.
`RATIO cluster_webhooks` = the cluster's rate ÷ the single node's (1.0: the claims cost
nothing). Everything runs unpinned; PostgreSQL runs with fsync off (test server).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import free_port, python, start, stop, table, wait_http
from tests.support import postgres
from tests.support import redis as redis_support
from tests.support.hub import Hub
from tests.support.phone import get, pairs

ROOT = Path(__file__).resolve().parent.parent
CALLS = 600
ENDPOINTS = 5
PHONES = 16
DELIVERY = "[delivery]\nmax_in_flight_per_endpoint = 10\n"


def sink_total(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_sink/stats", timeout=5) as r:
        return int(json.loads(r.read())["total"])


def nodes(tmp: Path, database: str, bus: str | None) -> list[Hub]:
    hubs = []
    for name in ("a", "b") if bus else ("one",):
        workdir = tmp / name
        workdir.mkdir(parents=True)
        server = 'allow_private_targets = true\nlog_level = "warning"\n'
        if bus:
            server += f'bus = "{bus}"\nnode_id = "node-{name}"\n'
        hub = Hub(workdir, DELIVERY, backend="sqlite", server_config=server)
        hub.use_database(database)
        hubs.append(hub.start())
    return hubs


def run(hubs: list[Hub], sink_port: int, tag: str) -> dict[str, Any]:
    a = hubs[0]
    for i in range(ENDPOINTS):
        body = {"url": f"http://127.0.0.1:{sink_port}/{tag}/{i}/", "topics": ["extension_events"]}
        status, created = a.api("POST", "/api/v1/tenants/acme/webhooks", body)
        assert status == 201, created
    time.sleep(1.5)  # every node has the webhooks (directory notice)
    base = sink_total(sink_port)
    calls = list(range(CALLS))
    lock = threading.Lock()

    def phone() -> None:
        while True:
            with lock:
                if not calls:
                    return
                n = calls.pop()
            values = {"token": "gs-7f3a9c", "event": "Incoming Call", "local": "101",
                      "remote": f"0744{n:06d}", "call_id": f"{tag}-{n}"}  # fmt: skip
            get(hubs[n % len(hubs)].port, "/" + pairs(values))

    t0 = time.monotonic()
    threads = [threading.Thread(target=phone) for _ in range(PHONES)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ingested = time.monotonic() - t0

    def events() -> int:
        mine = [e for e in a.all_events() if str(e.get("call_id", "")).startswith(f"{tag}-")]
        return sum(e["topic"] == "extension_events" for e in mine)

    deadline = time.monotonic() + 120
    logged: float | None = None  # when every event was in the log
    while (got := sink_total(sink_port) - base) < (want := events() * ENDPOINTS) or (
        want < CALLS * 3 * ENDPOINTS
    ):
        if logged is None and want >= CALLS * 3 * ENDPOINTS:
            logged = time.monotonic() - t0
        if time.monotonic() > deadline:
            raise RuntimeError(f"{tag}: {got} of {want} deliveries")
        time.sleep(0.05)
    took = time.monotonic() - t0
    time.sleep(2.0)
    extra = sink_total(sink_port) - base - want
    who = a.sql("SELECT claimed_by, COUNT(*) FROM deliveries GROUP BY claimed_by ORDER BY 1")
    return {"rate": want / took, "ingest": ingested, "took": took, "deliveries": want,
            "logged": logged if logged is not None else took,
            "duplicates": extra, "by": ", ".join(f"{n or '-'} {c}" for n, c in who)}  # fmt: skip


def main() -> None:
    redis = redis_support.RedisServer().start()
    sink_port = free_port()
    sink = start([python(), "-m", "tests.support.sink", str(sink_port)], cpu=None, cwd=ROOT)
    results: dict[str, dict[str, Any]] = {}
    try:
        wait_http(f"http://127.0.0.1:{sink_port}/_sink/stats", sink)
        with tempfile.TemporaryDirectory() as tmp:
            for tag, bus in (("cluster", redis.url), ("single", None)):
                hubs = nodes(Path(tmp) / tag, postgres.server().new_database(), bus)
                try:
                    results[tag] = run(hubs, sink_port, tag)
                finally:
                    for hub in hubs:
                        hub.stop()
    finally:
        stop(sink)
        redis.close()
    rows = [
        [tag, f"{r['deliveries']:,}", f"{r['ingest']:.1f}", f"{r['logged']:.1f}",
         f"{r['took']:.1f}", f"{r['rate']:,.0f}", str(r["duplicates"]), r["by"]]
        for tag, r in results.items()
    ]  # fmt: skip
    title = (
        f"{CALLS} calls from {PHONES} phones, {ENDPOINTS} webhooks: deliveries/s from the first"
        " phone request to the last delivery; duplicates; who claimed them (- : nobody, a"
        " single node does not claim)"
    )
    header = ["", "deliveries", "ingest s", "in the log s", "total s", "deliveries/s",
              "duplicates", "claimed by"]  # fmt: skip
    print(table(title, header, rows))
    print(f"RATIO cluster_webhooks {results['cluster']['rate'] / results['single']['rate']:.2f}")


if __name__ == "__main__":
    main()
