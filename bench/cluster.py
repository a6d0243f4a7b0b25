"""Cluster benchmark, first part: two real nodes on one PostgreSQL and one redis-server.

    python bench/cluster.py        # about 70 s; prints a table
    python bench/cluster.py --cost-rates 600,1200   # and the CPU accounting at those rates

1. Cross-node live latency: phones send `Incoming Call` Action URLs to node A at 200
   requests/s for 5 s; one WSI subscriber on node B follows the tenant. Latency is phone
   request start -> the event's receipt on B (through A's commit, Redis Streams, B's
   fan-out).
2. Directory change seen by the other node: an API key is revoked on node A, and node B
   is asked every 5 ms until it refuses the key; 8 times.
   Then a config reload: a tenant is added to both nodes' config files, node A is asked
   to reload (`POST /api/v1/config/reload`), and a phone of the new tenant tries node B
   every 5 ms until it is taken; 5 times.
3. Phone requests/s with 8 phones spread over both nodes for 5 s (each phone waits for
   its answer before the next request: a rate, not a capacity).
4. CPU per phone request over every process (measured first, while no call is open, as
   on the single node it is compared with): phones send COST_RATE requests/s for
   COST_SECONDS, the realistic mix of bench/ingest.py (each call: `Incoming Call`,
   `Establish Call`, `Terminate Call`; 50 extensions), alternating between the nodes,
   while the user + system time of both nodes, the PostgreSQL postmaster and every
   process it forked (backends, WAL writer, ...) and redis-server is read from /proc;
   then the same load goes to one SQLite node (the default single-node hub), running
   alongside. After a round that warms both up, the two take turns COST_ROUNDS times, and
   each side's median round counts: one round of either moves by 20% from minute to
   minute on a shared machine.
   `RATIO cluster_cost` = the single node's median µs per request ÷ the cluster's
   (goal >= 0.5). With `--cost-rates R1,R2,...` the same accounting runs at those rates
   too (more phone threads for higher rates, each still waiting for its answer) and a
   second table shows how the cost per request falls as the load rises; the RATIO stays
   the one at COST_RATE.
5. Failover: node B is SIGKILLed once both nodes hold their share of the partitions;
   node A's `GET /api/v1/cluster` is asked every 20 ms until every partition has a live
   owner again (with the default `[cluster] lease_ttl = 5`, `lease_renew = 1`).

Everything runs unpinned on this machine; PostgreSQL runs with fsync off (test server).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CpuMeter, table
from tests.support import postgres
from tests.support import redis as redis_support
from tests.support.hub import Hub
from tests.support.phone import get, pairs, send_raw

RATE = 200
SECONDS = 5
COST_RATE = 150  # phone requests/s of the CPU accounting, under both setups' capacity
COST_SECONDS = 5
COST_ROUNDS = 3  # cluster and single node take turns
SENDERS = 6
IDLE_SECONDS = 4


def url(call_id: str, token: str = "gs-7f3a9c") -> str:
    values = {"token": token, "event": "Incoming Call", "local": "101", "remote": "0700"}
    return "/" + pairs({**values, "call_id": call_id})


CALL_EVENTS = ("Incoming Call", "Establish Call", "Terminate Call")


def call_url(tag: str, i: int) -> str:
    """The i-th request of the CPU accounting: calls of three requests (ringing,
    answered, hung up) over 50 extensions, as bench/ingest.py sends them, so the open
    calls stay few as on a real phone system."""
    call, ext = i // 3, 100 + (i // 3) % 50
    values = {"token": "gs-7f3a9c", "event": CALL_EVENTS[i % 3], "mac": f"000B8211{ext:04d}",
              "local": str(ext), "remote": f"0711{call:06d}", "call_id": f"{tag}-{call}",
              "duration": "12"}  # fmt: skip
    return "/" + pairs(values)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def latency(a: Hub, b: Hub) -> list[float]:
    from websockets.asyncio.client import connect

    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    async with connect(f"ws://127.0.0.1:{b.wsi_port}/", compression=None) as ws:
        await ws.send(json.dumps({"command": "auth", "name": "acme", "password": "tenant-secret"}))
        await ws.recv()
        await ws.send(
            json.dumps({"command": "subscribe", "topics": [{"topic": "extension_events"}]})
        )
        await ws.recv()

        def phones() -> None:
            start = time.perf_counter()
            for i in range(RATE * SECONDS):
                due = start + i / RATE
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                call_id = f"lat-{i}"
                sent[call_id] = time.perf_counter()
                get(a.port, url(call_id))

        sender = threading.Thread(target=phones)
        sender.start()
        deadline = time.monotonic() + SECONDS + 15
        while len(got) < RATE * SECONDS and time.monotonic() < deadline:
            try:
                raw = await asyncio.wait_for(ws.recv(), 5)
            except TimeoutError:
                break
            msg = json.loads(raw)
            if msg.get("event_type") == "call_start":
                got[msg["call_id"]] = time.perf_counter()
        await asyncio.to_thread(sender.join)
    return [(got[c] - sent[c]) * 1000 for c in got if c in sent]


def revocation(a: Hub, b: Hub) -> list[float]:
    out = []
    path = "/api/v1/tenants/acme/extensions"
    for i in range(8):  # each ends in one failed login: under the per-source limit
        _, key = a.api("POST", "/api/v1/tenants/acme/api-keys", {"name": f"k{i}"})
        status, reply = b.api("GET", path, key=key["key"])
        assert status == 200, (status, reply)
        start = time.perf_counter()
        a.api("DELETE", f"/api/v1/tenants/acme/api-keys/{key['key_id']}")
        while b.api("GET", path, key=key["key"])[0] != 401:
            time.sleep(0.005)
        out.append((time.perf_counter() - start) * 1000)
    return out


def reload_seen(a: Hub, b: Hub) -> list[float]:
    """ms from asking A to reload its config until B takes the new tenant's phones."""
    out = []
    for i in range(5):
        token = f"tk-bench-reload-{i}"
        tenant = (f'\n[[tenant]]\nname = "reload{i}"\ningest_token = "{token}"\n'
                  'open_ingest_networks = ["127.0.0.0/8"]\n')  # fmt: skip
        for hub in (a, b):
            hub.config_path.write_text(hub.config_path.read_text() + tenant)
        start = time.perf_counter()
        status, body = a.api("POST", "/api/v1/config/reload")
        assert status == 200 and f"tenant reload{i}" in body["added"], body
        polls = 0
        while True:  # each try from its own address: unknown tokens are limited per address
            polls += 1
            source = f"127.3.{i}.{polls % 250 + 1}"
            if send_raw(b.port, phone_get(b.port, token, f"rl-{i}"), source=source).status == 200:
                break
            time.sleep(0.005)
        out.append((time.perf_counter() - start) * 1000)
    return out


def phone_get(port: int, token: str, call_id: str) -> bytes:
    head = f"GET {url(call_id, token)} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    return (head + "User-Agent: Grandstream GXP2170 1.0.11.3\r\nConnection: close\r\n\r\n").encode()


def throughput(a: Hub, b: Hub) -> float:
    count = [0]
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def phone(n: int) -> None:
        i = 0
        hub = (a, b)[n % 2]
        while time.monotonic() < stop:
            if get(hub.port, url(f"tp-{n}-{i}")).status == 200:
                with lock:
                    count[0] += 1
            i += 1

    threads = [threading.Thread(target=phone, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return count[0] / SECONDS


def phone_load(hubs: list[Hub], tag: str, rate: int = COST_RATE) -> int:
    """`rate` requests/s for COST_SECONDS, alternating over `hubs`; how many got 200."""
    total = rate * COST_SECONDS
    senders = max(SENDERS, rate // 40)  # each waits for its answer: enough for the rate
    acked = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def sender(first: int) -> None:
        for i in range(first, total, senders):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            if get(hubs[i % len(hubs)].port, call_url(tag, i)).status == 200:
                with lock:
                    acked[0] += 1

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked[0]


def drained(hub: Hub) -> None:
    """Until no partition's inbox has rows waiting (at once on a single node)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = hub.api("GET", "/api/v1/cluster")
        lags = [p.get("inbox_lag") or 0 for p in body.get("partitions", [])]
        if status == 200 and not any(lags):
            return
        time.sleep(0.05)
    raise AssertionError("the owners never caught up with the inbox")


def cpu_per_request(
    hubs: list[Hub], roots: dict[str, int], tag: str, rate: int = COST_RATE
) -> dict[str, float]:
    """CPU µs per acknowledged phone request of each process tree in `roots`."""
    meter = CpuMeter(roots)
    meter.start()
    acked = phone_load(hubs, tag, rate)
    drained(hubs[0])  # a cluster's owners have processed every acknowledged report
    time.sleep(0.2)  # what the last requests set off (the other node's fan-out)
    used = meter.stop()
    assert acked == rate * COST_SECONDS, f"{tag}: {acked} acknowledged"
    return {name: seconds * 1e6 / acked for name, seconds in used.items()}


def idle_cost(roots: dict[str, int]) -> dict[str, float]:
    """CPU ms per second of each process tree with no phone at all (heartbeats, leases,
    bus reads, PostgreSQL's own background work)."""
    meter = CpuMeter(roots)
    meter.start()
    time.sleep(IDLE_SECONDS)
    return {name: seconds * 1000 / IDLE_SECONDS for name, seconds in meter.stop().items()}


def costs(
    cluster: list[Hub], roots: dict[str, int], single: Hub, rate: int = COST_RATE
) -> list[dict[str, float]]:
    """CPU µs per request of each process of the cluster and of the single node
    (`single`) at `rate`, measured in turns; one dict per round, the single node's as
    `single`."""
    assert single.proc is not None
    rounds = []
    for i in range(-1, COST_ROUNDS):  # round -1 warms both up (first requests cost more)
        used = cpu_per_request(cluster, roots, f"cost{rate}-{i}", rate)
        alone = cpu_per_request([single], {"node": single.proc.pid}, f"single{rate}-{i}", rate)
        used["single"] = alone["node"]
        rounds.append(used)
    return rounds[1:]


def cost_curve(
    cluster: list[Hub], roots: dict[str, int], single: Hub, rates: list[int]
) -> list[list[str]]:
    """`--cost-rates`: the same accounting at other rates (median of the rounds each)."""
    rows = []
    for rate in rates:
        rounds = costs(cluster, roots, single, rate)
        for r in rounds:
            r["cluster"] = sum(us for name, us in r.items() if name in roots)
        med = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
        rows.append([f"{rate}/s", *(f"{med[name]:.0f}" for name in roots),
                     f"{med['cluster']:.0f}", f"{med['single']:.0f}",
                     f"{med['single'] / med['cluster']:.2f}"])  # fmt: skip
    return rows


def owners(hub: Hub) -> list[str | None]:
    status, body = hub.api("GET", "/api/v1/cluster")
    assert status == 200, body
    return [p["owner"] for p in body["partitions"]]


def failover(a: Hub, b: Hub) -> float:
    """Seconds from SIGKILL of B to every partition owned by a live node (A) again."""
    killed = b.api("GET", "/api/v1/cluster")[1]["node_id"]
    deadline = time.monotonic() + 30
    while killed not in owners(a) or None in owners(a):  # both hold their share first
        assert time.monotonic() < deadline, "the nodes never shared the partitions"
        time.sleep(0.05)
    start = time.perf_counter()
    b.kill()
    while True:
        now = owners(a)
        if None not in now and killed not in now:
            return time.perf_counter() - start
        assert time.perf_counter() - start < 60, f"no failover: {now}"
        time.sleep(0.02)


def main() -> None:
    extra = [int(x) for x in sys.argv[2].split(",")] if sys.argv[1:2] == ["--cost-rates"] else []
    database = postgres.server().new_database()
    redis = redis_support.RedisServer().start()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "single"  # one node on its embedded SQLite (the default hub)
        workdir.mkdir()
        single = Hub(workdir, backend="sqlite").start()
        nodes = []
        for name in ("a", "b"):
            workdir = Path(tmp) / name
            workdir.mkdir()
            hub = Hub(workdir, backend="sqlite", server_config=f'bus = "{redis.url}"')
            hub.use_database(database)
            nodes.append(hub.start())
        a, b = nodes
        try:
            assert a.proc is not None and b.proc is not None and redis.proc is not None
            postmaster = (postgres.server().data / "postmaster.pid").read_text().split()[0]
            roots = {"node A": a.proc.pid, "node B": b.proc.pid,
                     "PostgreSQL": int(postmaster), "Redis": redis.proc.pid}  # fmt: skip
            # First, while no call is open anywhere (as for the single node below):
            # thousands of ringing calls left by the other phases cost the owner CPU.
            time.sleep(1)  # both nodes hold their share of the partitions
            idle = idle_cost(roots)
            rounds = costs([a, b], roots, single)
            curve = cost_curve([a, b], roots, single, extra)
            lat = asyncio.run(latency(a, b))
            rev = revocation(a, b)
            rel = reload_seen(a, b)
            rps = throughput(a, b)
            took = failover(a, b)
        finally:
            for hub in [*nodes, single]:
                hub.stop()
            redis.close()
    print(f"cross-node WSI latency at {RATE}/s: {len(lat)} events, p50 {pct(lat, 0.5):.1f} ms,"
          f" p99 {pct(lat, 0.99):.1f} ms, max {max(lat):.1f} ms")  # fmt: skip
    print(f"key revoked on A refused on B after: median {statistics.median(rev):.0f} ms,"
          f" max {max(rev):.0f} ms (8 revocations)")  # fmt: skip
    print(f"config reload on A, new tenant's phones taken by B after: median"
          f" {statistics.median(rel):.0f} ms, max {max(rel):.0f} ms (5 reloads)")  # fmt: skip
    print(f"phone requests/s, 8 phones over 2 nodes: {rps:.0f}")
    print(f"failover: node B SIGKILLed, every partition owned again after {took:.1f} s")
    for r in rounds:
        r["cluster"] = sum(us for name, us in r.items() if name in roots)
    median = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
    idle["cluster"] = sum(idle.values())
    labels = {**{name: name for name in roots}, "cluster": "cluster, all processes",
              "single": "one SQLite node (same load)"}  # fmt: skip
    rows = [[labels[name], *(f"{r[name]:.0f}" for r in rounds), f"{median[name]:.0f}",
             f"{idle[name]:.1f}" if name in idle else ""] for name in labels]  # fmt: skip
    title = (f"CPU µs per phone request, {COST_RATE}/s for {COST_SECONDS} s, cluster"
             f" (alternating over both nodes) and single node in turns, {COST_ROUNDS} rounds;"
             " idle: CPU ms/s with no phone")  # fmt: skip
    rounds_head = [f"round {i + 1}" for i in range(COST_ROUNDS)]
    print(table(title, ["process", *rounds_head, "median", "idle ms/s"], rows))
    if curve:
        head = ["rate", *roots, "cluster", "one SQLite node", "single ÷ cluster"]
        print(table("CPU µs per phone request at other rates (--cost-rates), medians", head, curve))
    print(f"RATIO cluster_latency {25 / pct(lat, 0.99):.2f}")
    print(f"RATIO cluster_cost {median['single'] / median['cluster']:.2f}")


if __name__ == "__main__":
    main()
