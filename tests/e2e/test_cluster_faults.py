"""Faults under a two-node cluster: a node SIGKILLed under load, PostgreSQL restarted.

Whatever happens, no phone gets a `200` for a report that is not in the log, `seq` stays
gap-free, and the nodes still up go on (and recover by themselves).
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_cluster import Cluster, check_log, phones_on_both, settle, subscribe, wait_for
from tests.support import postgres, wsi

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
