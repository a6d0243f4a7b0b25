"""Retention on a real hub: old events go, CDRs and each tenant's newest event stay."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub import Hub

# About 2.6 s: the hub then prunes every second (a tenth of the age, at least 1 s).
RETENTION = "\n[retention]\nevents_days = 0.00003\n"


@pytest.fixture
def short_hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path, extra_config=RETENTION).start()
    try:
        yield h
    finally:
        h.stop()


def phone(hub: Hub, event: str, **pairs: str) -> None:
    query = "&".join(
        f"{k}={v}" for k, v in {"mac": "000B82112233", "local": "101", **pairs}.items()
    )
    with urllib.request.urlopen(f"{hub.base}/ingest/gs-7f3a9c/{event}?{query}", timeout=10) as r:
        assert r.status == 200


def wait_for(what: str, check: Callable[[], object], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_old_events_are_pruned_but_cdrs_and_seq_survive(short_hub: Hub) -> None:
    h = short_hub
    call = {"remote": "0711222333", "call_id": "ret-1"}
    phone(h, "incoming_call", **call)
    phone(h, "terminate_call", **call)
    phone(h, "dnd_on")
    wait_for("a CDR", lambda: h.api("GET", "/api/v1/tenants/acme/cdrs")[1]["cdrs"])
    before = h.all_events()
    assert len(before) >= 4
    newest = before[-1]["seq"]

    wait_for("pruning", lambda: len(h.all_events()) == 1)
    assert h.all_events()[0]["seq"] == newest  # the newest is kept: seq never restarts
    assert len(h.api("GET", "/api/v1/tenants/acme/cdrs")[1]["cdrs"]) == 1  # CDRs are kept
    with urllib.request.urlopen(h.base + "/metrics", timeout=10) as r:
        families = {f.name: f for f in text_string_to_metric_families(r.read().decode())}
    pruned = {
        s.labels["table"]: s.value
        for s in families["callhook_retention_pruned"].samples
        if s.name.endswith("_total")
    }
    assert pruned["events"] >= len(before) - 1

    # After a restart the log goes on from where it was, not from 1.
    h.stop()
    h.start()
    phone(h, "dnd_off")
    seqs = [e["seq"] for e in h.all_events()]
    assert seqs[-1] > newest
