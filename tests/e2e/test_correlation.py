"""Correlation through a real hub: phones on raw sockets, results read back over the API.

Each test is one call flow as phones report it; the pure correlator's own tests cover the
combinatorics (tests/unit/test_correlate*.py), these check the whole path.
"""

from __future__ import annotations

import csv
import io
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"
pytestmark = pytest.mark.slow  # thirty call flows, seconds each: `make test` starts it early


def _tuned(tmp: Path) -> Hub:
    hub = Hub(tmp)
    text = hub.config_path.read_text().replace(
        "tick_interval = 0.2",
        "tick_interval = 0.2\nsession_timeout = 3\nmin_ring_seconds = 1\nmerge_window = 2",
    )
    hub.config_path.write_text(text)
    return hub


@pytest.fixture
def chub(tmp_path: Path) -> Iterator[Hub]:
    h = _tuned(tmp_path).start()
    try:
        yield h
    finally:
        h.stop()


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def cdrs(hub: Hub, query: str = "") -> list[dict[str, Any]]:
    status, body = hub.api("GET", f"/api/v1/tenants/acme/cdrs?{query}")
    assert status == 200, body
    return list(body["cdrs"])


def keys(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def session_events(hub: Hub, session_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.all_events() if e.get("session_id") == session_id]


def test_internal_call_reported_by_both_phones_is_one_session(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101", mac="000B82000101")
    bob = Phone(chub.port, TOKEN, "102", mac="000B82000102")
    assert alice.send("Outgoing Call", remote="102", call_id="a-1").status == 200
    assert bob.send("Incoming Call", remote="101", call_id="b-1").status == 200
    time.sleep(0.3)
    bob.send("Establish Call", remote="101", call_id="b-1")
    alice.send("Establish Call", remote="102", call_id="a-1")
    time.sleep(1.1)
    alice.send("Terminate Call", remote="102", call_id="a-1", duration="1")
    bob.send("Terminate Call", remote="101", call_id="b-1", duration="1")
    (cdr,) = wait_for("one CDR", lambda: cdrs(chub))
    assert cdr["direction"] == "ext" and cdr["status"] == "answered"
    assert cdr["caller"] == "sip:101@acme.example.com"
    assert cdr["callee"] == "sip:102@acme.example.com"
    events = session_events(chub, cdr["session_id"])
    for lifecycle in ("call_start", "call_established", "call_ended", "call_cdr"):
        assert keys(events).count(lifecycle) == 1, keys(events)
    assert all(e["session_id"] == cdr["session_id"] for e in events)


def test_ring_group_answered_elsewhere_is_not_missed(chub: Hub) -> None:
    phones = [Phone(chub.port, TOKEN, n, mac=f"000B8200{n}0") for n in ("101", "102", "103")]
    for p in phones:
        p.send("Incoming Call", remote="0711222333", call_id=f"rg-{p.number}")
    time.sleep(1.2)
    phones[1].send("Establish Call", remote="0711222333", call_id="rg-102")
    for p in (phones[0], phones[2]):
        p.send("Missed Call", remote="0711222333", call_id=f"rg-{p.number}")
    time.sleep(0.3)
    phones[1].send("Terminate Call", remote="0711222333", call_id="rg-102", duration="3")
    (cdr,) = wait_for("one CDR", lambda: cdrs(chub))
    assert cdr["status"] == "answered" and cdr["direction"] == "inbound"
    events = session_events(chub, cdr["session_id"])
    assert "call_noanswer" not in keys(events)
    elsewhere = [e for e in events if e["event_type"] == "target_noanswer"]
    assert {e.get("reason") for e in elsewhere} == {"answered_elsewhere"}
    assert len(elsewhere) == 2


def test_missed_and_abandoned_are_told_apart_by_ring_time(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101")
    alice.send("Incoming Call", remote="0711000001", call_id="short")
    alice.send("Missed Call", remote="0711000001", call_id="short")  # rang ~0 s
    alice.send("Incoming Call", remote="0711000002", call_id="long")
    time.sleep(1.3)
    alice.send("Missed Call", remote="0711000002", call_id="long")
    got = wait_for("two CDRs", lambda: len(cdrs(chub)) == 2 and cdrs(chub))
    status = {c["call_id"]: c["status"] for c in got}
    assert status == {"short": "abandoned", "long": "missed"}
    assert [c["call_id"] for c in cdrs(chub, "status=missed")] == ["long"]


def test_transfer_hold_and_resume(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101")
    alice.send("Incoming Call", remote="0711555000", call_id="t-1")
    alice.send("Establish Call", remote="0711555000", call_id="t-1")
    alice.send("Hold Call", remote="0711555000", call_id="t-1")
    alice.send("Hold Call", remote="0711555000", call_id="t-1")  # a repeat: dropped
    alice.send("Resume Call", remote="0711555000", call_id="t-1")
    alice.send("Blind Transferring", remote="103", call_id="t-1")
    events = wait_for(
        "call_reroute",
        lambda: (
            [e for e in chub.all_events() if e["call_id"] == "t-1"]
            if "call_reroute" in keys(chub.all_events())
            else None
        ),
    )
    assert keys(events).count("call_hold") == 1 and keys(events).count("call_unhold") == 1
    (reroute,) = [e for e in events if e["event_type"] == "call_reroute"]
    assert reroute["reason"] == "blind_transfer"
    assert "103" in reroute["call_target"]
    assert "101" in reroute["transferred_by"]


def test_terminate_without_start_still_ends_one_session(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101")
    for _ in range(3):  # a phone repeating itself
        assert (
            alice.send("Terminate Call", remote="0711999", call_id="late", duration="7").status
            == 200
        )
    (cdr,) = wait_for("a CDR", lambda: cdrs(chub))
    assert cdr["talk_seconds"] == 7
    events = session_events(chub, cdr["session_id"])
    assert keys(events).count("call_ended") == 1 and keys(events).count("call_cdr") == 1


def test_open_session_times_out_and_presence_follows(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101")
    alice.send("Incoming Call", remote="0711333", call_id="reboot")
    alice.send("Establish Call", remote="0711333", call_id="reboot")
    status, calls = chub.api("GET", "/api/v1/tenants/acme/calls?active=true")
    assert status == 200 and [c["call_id"] for c in calls["calls"]] == ["reboot"]
    status, state = chub.api("GET", "/api/v1/tenants/acme/extensions/101/state")
    assert status == 200 and state["sessions"], state
    alice.send("Booting Completed")  # the phone rebooted mid-call: no Terminate ever comes
    (cdr,) = wait_for("the timeout CDR", lambda: cdrs(chub), timeout=15)
    assert cdr["end_reason"] == "timeout"
    assert chub.api("GET", "/api/v1/tenants/acme/calls?active=true")[1]["calls"] == []
    state = chub.api("GET", "/api/v1/tenants/acme/extensions/101/state")[1]
    assert not state["sessions"]


def test_presence_from_registration_dnd_forward_and_hook(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101", mac="000B82ABCDEF")
    alice.send("Registration", phone_ip="192.0.2.10", product="GXV3370", program_version="1.0.1.28")
    alice.send("DND On")
    alice.send("Call Forwarding On", remote="0711444")
    alice.send("Off Hook")
    state = chub.api("GET", "/api/v1/tenants/acme/extensions/101/state")[1]
    assert state["dnd"] is True and state["forward"] and state["hook"] == "off_hook"
    (contact,) = state["contacts"]
    assert "GXV3370" in contact["user_agent"] and "192.0.2.10" in contact["contact_uri"]
    alice.send("DND Off")
    alice.send("Sign Off")
    state = chub.api("GET", "/api/v1/tenants/acme/extensions/101/state")[1]
    assert state["dnd"] is False and not state["contacts"]
    register = [e for e in chub.all_events() if e["event_type"] == "extension_register"]
    assert "registration_contacts" in register[0] and "removed_contacts" in register[-1]
    assert chub.api("GET", "/api/v1/tenants/acme/extensions/999/state")[0] == 404


def test_call_spanning_a_restart_is_one_session(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "101")
    alice.send("Incoming Call", remote="0711777", call_id="span")
    alice.send("Establish Call", remote="0711777", call_id="span")
    chub.stop()
    chub.start()
    alice = Phone(chub.port, TOKEN, "101")
    alice.send("Terminate Call", remote="0711777", call_id="span", duration="2")
    (cdr,) = wait_for("a CDR", lambda: cdrs(chub))
    starts = [e for e in chub.all_events() if e["event_type"] == "call_start"]
    assert len(starts) == 1 and starts[0]["session_id"] == cdr["session_id"]
    assert cdr["status"] == "answered"


def test_cdrs_page_by_cursor_and_come_as_csv(chub: Hub) -> None:
    alice = Phone(chub.port, TOKEN, "102")
    for i in range(5):
        alice.send("Terminate Call", remote=f"07110000{i}", call_id=f"p-{i}", duration=str(i + 1))
    wait_for("five CDRs", lambda: len(cdrs(chub)) == 5)
    seen: list[str] = []
    cursor = 0
    while True:
        status, page = chub.api("GET", f"/api/v1/tenants/acme/cdrs?limit=2&cursor={cursor}")
        assert status == 200
        seen += [c["call_id"] for c in page["cdrs"]]
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert seen == [f"p-{i}" for i in range(5)]
    assert [c["call_id"] for c in cdrs(chub, "extension=102&limit=10")] == seen
    assert cdrs(chub, "extension=101") == []
    req = urllib.request.Request(
        chub.base + "/api/v1/tenants/acme/cdrs",
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Accept": "text/csv"},
    )
    with urllib.request.urlopen(req) as r:
        assert r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.read().decode())))
    assert [r["call_id"] for r in rows] == seen
    assert rows[0]["talk_seconds"] == "1"
    assert chub.api("GET", "/api/v1/tenants/acme/cdrs?from=yesterday")[0] == 400


def test_repeat_of_a_finished_call_after_a_restart_is_dropped(chub: Hub) -> None:
    carol = Phone(chub.port, TOKEN, "103")
    carol.send("Incoming Call", remote="0711888", call_id="dr1")
    carol.send("Establish Call", remote="0711888", call_id="dr1")
    carol.send("Terminate Call", remote="0711888", call_id="dr1", duration="1")
    (cdr,) = wait_for("a CDR", lambda: cdrs(chub))
    chub.stop()
    chub.start()
    carol = Phone(chub.port, TOKEN, "103")
    assert carol.send("Terminate Call", remote="0711888", call_id="dr1", duration="1").status == 200
    carol.send("Establish Call", remote="0711888", call_id="dr1")
    assert cdrs(chub) == [cdr]
    assert keys(session_events(chub, cdr["session_id"]))[0] == "call_start"
    assert [e["session_id"] for e in chub.all_events() if e["event_type"] == "call_start"] == [
        cdr["session_id"]
    ]
