"""A report the correlator fails on is kept, counted and logged: never a silent `200 ok`.

The fault is real: `[testing] correlator_fault` makes the correlator of a real
`callhook serve` raise on one phone event (the production default keeps it off). Before,
`Correlator.feed` swallowed every exception and returned nothing: the phone got `200 ok`
and the report was not stored at all.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub(tmp_path_factory.mktemp("fault"), '\n[testing]\ncorrelator_fault = "hold_call"\n')
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def _metric(hub: Hub, name: str) -> float:
    with urllib.request.urlopen(hub.base + "/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_report_the_correlator_fails_on_is_stored_raw_counted_and_logged(faulty: Hub) -> None:
    hub = faulty
    phone = Phone(hub.port, TOKEN, "101", mac="000B82000101")
    call = {"remote": "0711222333", "call_id": "fault-1", "display_remote": "Zoë"}
    assert phone.send("Incoming Call", **call).status == 200
    assert phone.send("Establish Call", **call).status == 200
    metric = 'callhook_correlation_failures_total{tenant="acme"}'
    assert _metric(hub, metric) == 0.0

    r = phone.send("Hold Call", **call)
    assert r.status == 202, r.body
    answer = r.json()
    assert answer["status"] == "accepted" and answer["events"] == ["action_url"]
    assert "correlation-failed" in answer["hints"]

    [raw] = [e for e in hub.all_events(topic="device_events") if e["event_type"] == "action_url"]
    assert raw["seq"] == answer["seq"]
    assert raw["event"] == "hold_call" and raw["event_name"] == "Hold Call"
    assert raw["hints"] == ["correlation-failed"]
    assert raw["pairs"]["call_id"] == "fault-1" and raw["pairs"]["display_remote"] == "Zoë"
    assert raw["variables"]["local"] == "101" and raw["vendor"] == "grandstream"
    assert "InjectedFault" in raw["error"]
    assert _metric(hub, metric) == 1.0

    deadline = time.monotonic() + 10
    while "correlation failed" not in hub.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, hub.logs()
        time.sleep(0.05)
    line = next(ln for ln in hub.log_path.read_text().splitlines() if "correlation failed" in ln)
    assert "tenant=acme" in line and "source=127.0.0.1" in line and "fault-1" in line
    assert "InjectedFault" in line  # the traceback goes with it

    # The hub goes on: the rest of the call is correlated as usual.
    assert phone.send("Terminate Call", duration="12", **call).status == 200
    keys = [e["event_type"] for e in hub.all_events() if e.get("call_id") == "fault-1"]
    assert keys[0] == "call_start" and keys[-1] == "call_cdr" and "call_ended" in keys
    assert hub.alive()


def test_the_fault_hook_is_off_by_default(hub: Hub, tmp_path: Path) -> None:
    phone = Phone(hub.port, TOKEN, "102", mac="000B82000102")
    call = {"remote": "0711222444", "call_id": "nofault-1"}
    assert phone.send("Incoming Call", **call).status == 200
    assert phone.send("Establish Call", **call).status == 200
    r = phone.send("Hold Call", **call)
    assert r.status == 200 and r.json()["events"] == ["call_hold"]
