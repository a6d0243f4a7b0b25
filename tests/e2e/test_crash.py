"""SIGKILL while writing: every acknowledged event is in the log after restart, seq gap-free."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.hub import Hub
from tests.support.phone import get, pairs


def incoming_call(call_id: str, remote: str) -> str:
    """The seed-shaped URL of an Incoming Call to 101."""
    values = {"token": "gs-7f3a9c", "event": "Incoming Call", "local": "101"}
    return "/" + pairs({**values, "remote": remote, "call_id": call_id})


def start_phones(
    phone: Callable[[int], None], enough: Callable[[], bool]
) -> list[threading.Thread]:
    """Six phones sending at once; returns when `enough()` (or after 30 s)."""
    threads = [threading.Thread(target=phone, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while not enough() and time.monotonic() < deadline:
        time.sleep(0.01)
    return threads


@pytest.mark.parametrize("durability", ["normal", "full"])
def test_sigkill_loses_no_acknowledged_event(tmp_path: Path, durability: str) -> None:
    hub = Hub(tmp_path, durability=durability).start()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def phone(n: int) -> None:
        i = 0
        while not stop.is_set() and i < 400:
            call_id = f"crash-{n}-{i}"
            try:
                r = get(hub.port, incoming_call(call_id, f"07{n:02d}{i:06d}"))
            except OSError:
                return  # the hub died under us: this request was never acknowledged
            if r.status == 200:
                with lock:
                    acked.append(call_id)
            i += 1

    threads = start_phones(phone, lambda: len(acked) >= 300)
    hub.kill()  # mid-write: phones are still sending
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 300

    hub.start()
    try:
        events = hub.all_events()
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(seqs) + 1)), "seq must be gap-free"
        stored = {e.get("call_id") for e in events if e["event_type"] == "call_start"}
        missing = [c for c in acked if c not in stored]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
        assert len({e["event_id"] for e in events}) == len(events)
    finally:
        hub.stop()


def test_sigterm_answers_what_it_took_and_loses_nothing(tmp_path: Path) -> None:
    """Graceful shutdown while phones send: requests in flight are answered after their
    commit (not dropped half-way), the process exits 0, and every 200 is in the log."""
    hub = Hub(tmp_path).start()
    acked: list[str] = []
    broken: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def phone(n: int) -> None:
        for i in range(2000):
            if stop.is_set():
                return
            call_id = f"term-{n}-{i}"
            try:
                r = get(hub.port, incoming_call(call_id, f"07{n:02d}{i:06d}"))
            except OSError:
                return  # refused once the listener closed
            with lock:
                if r.status == 200:
                    acked.append(call_id)
                elif r.status != 0:
                    broken.append(r.body)  # any other answer is a bug
                # status 0: the connection closed before an answer (not acknowledged)

    threads = start_phones(phone, lambda: len(acked) >= 200)
    assert hub.stop() == 0, hub.logs()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 200 and not broken, broken[:3]

    hub.start()
    try:
        stored = {e.get("call_id") for e in hub.all_events() if e["event_type"] == "call_start"}
        missing = [c for c in acked if c not in stored]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:5]}"
    finally:
        hub.stop()
