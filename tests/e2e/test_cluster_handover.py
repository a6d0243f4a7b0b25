"""Partitions changing hands under load: a node's subscribers miss nothing and get
nothing twice while it gives partitions up to a node that joins, and takes them back.

Real `callhook serve` nodes on one PostgreSQL and one Redis (tests/e2e/test_cluster.py).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from callhook.cluster.partitions import PARTITIONS, partition_of
from tests.e2e.test_cluster import EVERYTHING, Cluster, settle, wait_for
from tests.support import wsi
from tests.support.hub import Hub
from tests.support.phone import get, pairs

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = [pytest.mark.own_engines, pytest.mark.slow]


def one_tenant_per_partition() -> dict[str, str]:
    """Tenant name -> ingest token: a tenant in each partition."""
    names: dict[int, str] = {}
    for i in itertools.count():
        names.setdefault(partition_of(f"moving{i}"), f"moving{i}")
        if len(names) == PARTITIONS:
            return {name: f"tk-{name}" for name in names.values()}
    raise AssertionError("unreachable")


def phones_of_every_tenant(
    cluster: Cluster, tenants: dict[str, str], stop: threading.Event, acked: dict[str, int]
) -> list[threading.Thread]:
    """Four phones calling the tenants in turn, on every node alive, until `stop`."""
    lock = threading.Lock()
    names = list(tenants)

    def phone(n: int) -> None:
        for i in itertools.count(n, 4):
            if stop.is_set():
                return
            name = names[i % len(names)]
            values = {"token": tenants[name], "event": "Incoming Call", "local": "101",
                      "remote": f"0744{i:06d}", "call_id": f"moving-{i}"}  # fmt: skip
            alive = [h for h in cluster.nodes if h.proc is not None and h.proc.poll() is None]
            try:
                ok = get(alive[i % len(alive)].port, "/" + pairs(values)).status == 200
            except OSError:
                ok = False
            if ok:
                with lock:
                    acked[name] += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=phone, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    return threads


def partitions_held(hub: Hub) -> int:
    status, body = hub.api("GET", "/api/v1/cluster")
    if status != 200:
        return -1
    return sum(p["owner"] == body["node_id"] for p in body["partitions"])


async def check_received(hub: Hub, tenant: str, calls: int, received: list[int]) -> None:
    """Once the log holds `calls` calls of `tenant`: `received` is its seq 1..N, once each."""
    deadline = time.monotonic() + 15
    while True:  # the owners correlate what was acknowledged
        events = hub.all_events(tenant)
        starts = sum(e["event_type"] == "call_start" for e in events)
        if starts >= calls or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert starts >= calls, f"{tenant}: {calls} calls acknowledged, {starts} stored"
    last = events[-1]["seq"] if events else 0
    await asyncio.to_thread(settle, lambda: len(received) >= last, 30)
    await asyncio.sleep(0.2)  # anything sent twice would have arrived by now
    missing = sorted(set(range(1, last + 1)) - set(received))
    assert received == list(range(1, last + 1)), (
        f"{tenant}: {len(received)} events for {last} stored, missing {missing[:10]}"
    )


async def test_subscribers_of_a_node_giving_up_partitions_miss_nothing(tmp_path: Path) -> None:
    """Node A holds every partition; B joins and takes half of them while phones call every
    tenant: A's subscribers get those tenants' events from the streams from then on, with
    no gap and no duplicate; then B is killed and A takes them back, alike."""
    tenants = one_tenant_per_partition()
    extra = "".join(
        f'\n[[tenant]]\nname = "{name}"\npassword = "pw-{name}"\ningest_token = "{token}"\n'
        'open_ingest_networks = ["127.0.0.0/8"]\n'
        for name, token in tenants.items()
    )  # fmt: skip
    cluster = Cluster(tmp_path, extra=extra)
    a, b = cluster.nodes
    a.start()
    received: dict[str, list[int]] = {name: [] for name in tenants}
    sockets = []
    readers = []
    try:
        for name in tenants:
            ws = await wsi.login(a.wsi_port, name=name, password=f"pw-{name}")
            cmd = {"command": "subscribe", "topics": EVERYTHING, "since_seq": 0}
            assert await wsi.call(ws, cmd) == {"status": 0}
            sockets.append(ws)

            async def read(ws: Any = ws, seqs: list[int] = received[name]) -> None:
                while True:
                    seqs.append((await wsi.recv_json(ws, 120))["seq"])

            readers.append(asyncio.create_task(read()))
        stop = threading.Event()
        acked = dict.fromkeys(tenants, 0)

        async def calls(more: int) -> None:
            """Until `more` calls more are acknowledged."""
            goal = sum(acked.values()) + more
            await asyncio.to_thread(wait_for, lambda: sum(acked.values()) >= goal)

        async def held(count: int) -> None:
            await asyncio.to_thread(wait_for, lambda: partitions_held(a) == count)

        threads = phones_of_every_tenant(cluster, tenants, stop, acked)
        try:
            await calls(150)
            b.start()  # takes half of the partitions: A gives them up
            await held(PARTITIONS // 2)
            await calls(150)
            b.kill()  # A takes them back when their leases expire
            await held(PARTITIONS)
            await calls(150)
        finally:
            stop.set()
            for t in threads:
                await asyncio.to_thread(t.join)
        for name in tenants:
            await check_received(a, name, acked[name], received[name])
    finally:
        for r in readers:
            r.cancel()
        for ws in sockets:
            await ws.close()
        cluster.stop()
