"""SIGKILL while writing: every acknowledged event is in the log after restart, seq gap-free."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.support.hub import Hub
from tests.support.phone import get, pairs


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
            values = {"token": "gs-7f3a9c", "event": "Incoming Call", "local": "101"}
            values.update({"remote": f"07{n:02d}{i:06d}", "call_id": call_id})
            try:
                r = get(hub.port, "/" + pairs(values))
            except OSError:
                return  # the hub died under us: this request was never acknowledged
            if r.status == 200:
                with lock:
                    acked.append(call_id)
            i += 1

    threads = [threading.Thread(target=phone, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.01)
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
