"""PostgreSQL restarted under phone load: no 200 for a report that was not stored, and the
hub recovers by itself (no restart of the hub) once the server is back."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.e2e.test_crash import incoming_call, start_phones
from tests.support.hub import Hub
from tests.support.phone import get
from tests.support.postgres import PostgresServer

# Starts its own PostgreSQL/Redis: the same on both passes of `make test`, so run once.
pytestmark = pytest.mark.own_engines


def test_a_restarted_postgresql_gives_503s_then_the_hub_goes_on(tmp_path: Path) -> None:
    server = PostgresServer().start()  # its own: restarting it touches no other test
    hub = Hub(tmp_path, backend="sqlite")
    hub.use_database(server.new_database())
    hub.start()
    answers: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def phone(n: int) -> None:
        i = 0
        while not stop.is_set():
            call_id = f"restart-{n}-{i}"
            try:
                r = get(hub.port, incoming_call(call_id, f"07{n:02d}{i:06d}"))
            except OSError:
                r = None
            with lock:
                answers[call_id] = r.status if r is not None else 0
            i += 1
            time.sleep(0.005)

    try:
        threads = start_phones(phone, lambda: len(answers) >= 100)
        server.restart(down_for=2.0)  # the hub's connections are cut; it is down for 2 s
        with lock:
            mark = len(answers)
        deadline = time.monotonic() + 30
        while True:  # recovered: 200s again, without restarting the hub
            with lock:
                later = list(answers.items())[mark:]
            if sum(1 for _, s in later if s == 200) >= 50:
                break
            assert time.monotonic() < deadline, later[-5:]
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
        statuses = set(answers.values())
        assert statuses <= {200, 503, 0}, statuses  # never a 500
        assert 503 in statuses  # the outage was seen, and answered as one

        events = hub.all_events()
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), "seq must be gap-free"
        stored = {e.get("call_id") for e in events if e["event_type"] == "call_start"}
        acked = [c for c, s in answers.items() if s == 200]
        missing = [c for c in acked if c not in stored]
        assert not missing, f"{len(missing)} acknowledged reports lost, e.g. {missing[:5]}"
        assert len({e["event_id"] for e in events}) == len(events)
    finally:
        stop.set()
        hub.stop()
        server.stop()
