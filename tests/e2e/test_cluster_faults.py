"""Faults under a two-node cluster: a node SIGKILLed under load, PostgreSQL restarted.

Whatever happens, no phone gets a `200` for a report that is not in the log, `seq` stays
gap-free, and the nodes still up go on (and recover by themselves).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from callhook.cluster.partitions import partition_of
from tests.e2e.test_cluster import (
    Cluster,
    check_log,
    phones_on_both,
    ring,
    settle,
    subscribe,
    wait_for,
)
from tests.support import postgres, wsi
from tests.support.hub import Hub

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines


async def test_a_node_killed_under_load_loses_no_acknowledged_event(tmp_path: Path) -> None:
    cluster = Cluster(tmp_path).start()
    a, b = cluster.nodes
    try:
        ws = await subscribe(b, since=0)
        received: list[int] = []

        async def read() -> None:
            while True:
                received.append((await wsi.recv_json(ws, 60))["seq"])

        reader = asyncio.create_task(read())
        stop = threading.Event()
        acked: list[str] = []
        threads = phones_on_both(cluster, stop, acked)
        try:
            await asyncio.to_thread(wait_for, lambda: len(acked) >= 150)
            a.kill()  # SIGKILL, in the middle of its group commits
            mark = len(acked)
            await asyncio.to_thread(wait_for, lambda: len(acked) >= mark + 100)  # B goes on
        finally:
            stop.set()
            for t in threads:
                await asyncio.to_thread(t.join)
        events = check_log(b, acked)
        last = events[-1]["seq"]
        await asyncio.to_thread(settle, lambda: len(received) >= last, 30)
        await asyncio.sleep(0.5)
        reader.cancel()
        assert received == list(range(1, last + 1)), f"{len(received)} of {last} events"
        await ws.close()
    finally:
        cluster.stop()


async def until_quiet(ws: Any, quiet: float) -> list[dict[str, Any]]:
    """The events received until none came for `quiet` seconds."""
    out = []
    while True:
        try:
            out.append(await wsi.recv_json(ws, quiet))
        except TimeoutError:
            return out


def owners(hub: Hub) -> set[str | None]:
    status, body = hub.api("GET", "/api/v1/cluster")
    assert status == 200, body
    return {p["owner"] for p in body["partitions"]}


def owner_of(hub: Hub, tenant: str) -> str | None:
    status, body = hub.api("GET", "/api/v1/cluster")
    assert status == 200, body
    owner: str | None = body["partitions"][partition_of(tenant)]["owner"]
    return owner


async def test_events_an_owner_committed_but_never_sent_to_redis_reach_subscribers(
    tmp_path: Path,
) -> None:
    """Three nodes. The owner of acme's partition loses Redis, commits a call (the phone
    has its `200`), and is SIGKILLed before it could add the event to its stream. Both
    other nodes hand that event to their subscribers from the log as the partition is
    taken, not at the tenant's next event (a quiet tenant might have none for hours):
    the node that takes it, and the third one, told by the new owner's `taken` entry."""
    cluster = Cluster(tmp_path, redis_users=True, nodes=3).start()
    try:
        nodes = dict(zip(("node-a", "node-b", "node-c"), cluster.nodes, strict=True))
        a = nodes["node-a"]
        await asyncio.to_thread(wait_for, lambda: owners(a) == set(nodes))  # each holds some
        owner_id = owner_of(a, "acme")
        assert owner_id is not None
        owner = nodes[owner_id]
        other_ids = sorted(set(nodes) - {owner_id})
        others = [nodes[node_id] for node_id in other_ids]
        sockets = [await subscribe(hub) for hub in others]
        try:
            first, status = ring(others[0])
            assert status == 200
            for ws in sockets:
                await wsi.events_until(ws, lambda evs: any(e.get("call_id") == first for e in evs))
                await until_quiet(ws, 1.0)  # the rest of its events (ringing ...)

            cluster.cut_off(owner_id)
            lost, status = ring(others[0])  # in the inbox: the owner commits it, cannot send it
            assert status == 200
            stored = lambda: any(e.get("call_id") == lost for e in a.all_events())  # noqa: E731
            await asyncio.to_thread(wait_for, stored, 10)
            for ws in sockets:
                assert await until_quiet(ws, 0.5) == []  # not on the stream: not there

            owner.kill()
            got: list[list[dict[str, Any]]] = []
            for node_id, ws in zip(other_ids, sockets, strict=True):
                try:
                    got.append(
                        await wsi.events_until(
                            ws, lambda evs: any(e.get("call_id") == lost for e in evs), within=20
                        )
                    )
                except TimeoutError:
                    pytest.fail(f"the call committed by the dead owner never reached {node_id}")
                assert [e["event_type"] for e in got[-1] if e.get("call_id") == lost] == [
                    "call_start"
                ]
            assert owner_of(others[0], "acme") in other_ids

            # and the new owner's own next events, once each, on both nodes
            after, status = ring(others[1])
            assert status == 200
            for ws, before in zip(sockets, got, strict=True):
                more = await wsi.events_until(
                    ws, lambda evs: any(e.get("call_id") == after for e in evs)
                )
                seqs = [e["seq"] for e in before + more]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        finally:
            for ws in sockets:
                await ws.close()
    finally:
        cluster.stop()


def test_postgresql_restarted_under_two_nodes_gives_503s_then_both_go_on(
    tmp_path: Path,
) -> None:
    server = postgres.start()  # its own: restarting it touches no other
    cluster = Cluster(tmp_path, server.new_database()).start()
    answers: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    try:
        from tests.e2e.test_cluster import ring

        def phone(n: int) -> None:
            while not stop.is_set():
                call_id, status = ring(cluster.nodes[n % 2])
                with lock:
                    answers[call_id] = status
                time.sleep(0.005)

        threads = [threading.Thread(target=phone, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        wait_for(lambda: len(answers) >= 100)
        server.restart(down_for=2.0)
        with lock:
            mark = len(answers)

        def recovered() -> bool:
            with lock:
                later = list(answers.items())[mark:]
            return sum(1 for _, s in later if s == 200) >= 50

        wait_for(recovered, 30)
        stop.set()
        for t in threads:
            t.join()
        statuses = set(answers.values())
        assert statuses <= {200, 503, 0}, statuses  # never a 500
        assert 503 in statuses  # the outage was seen, and answered as one
        check_log(cluster.nodes[0], [c for c, s in answers.items() if s == 200])
        for hub in cluster.nodes:  # each node recovered by itself, both take phones
            assert ring(hub)[1] == 200
    finally:
        stop.set()
        cluster.stop()
        server.stop()
