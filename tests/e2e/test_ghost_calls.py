"""Calls that would otherwise stay open for hours: a phone that only ever said Incoming
Call, and a call whose end nobody reports (ended by hand over the API)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"


@pytest.fixture(scope="module")
def ghosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub(tmp_path_factory.mktemp("ghosts"))
    text = hub.config_path.read_text()
    hub.config_path.write_text(
        text.replace(
            "tick_interval = 0.2",
            "tick_interval = 0.2\nring_timeout = 2\nmin_ring_seconds = 1\nmerge_window = 1",
        )
    )
    hub.start()
    try:
        yield hub
    finally:
        hub.stop()


def until(cond: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        assert time.monotonic() < deadline, "not met in time"
        time.sleep(0.05)
    return got


def of_call(hub: Hub, call_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.all_events() if e.get("call_id") == call_id]


def test_a_call_that_only_rang_ends_unanswered_after_ring_timeout(ghosts: Hub) -> None:
    """It rang on for session_timeout (4 h): ring_timeout applied only to phones that had
    reported an answer before."""
    hub = ghosts
    phone = Phone(hub.port, TOKEN, "101", mac="000B82000101")
    assert phone.send("Incoming Call", remote="0711000001", call_id="ghost-1").status == 200
    assert hub.api("GET", "/api/v1/tenants/acme/extensions/101/state")[1]["sessions"]
    events = until(lambda: [e for e in of_call(hub, "ghost-1") if e["event_type"] == "call_cdr"]
                   and of_call(hub, "ghost-1"))  # fmt: skip
    assert [e["event_type"] for e in events] == [
        "call_start",
        "target_add",
        "target_ringing",
        "target_noanswer",
        "call_noanswer",
        "call_cdr",
    ]
    assert events[3]["reason"] == "ring_timeout"
    cdr = events[-1]
    assert (cdr["status"], cdr["end_reason"]) == ("missed", "ring_timeout")
    assert hub.api("GET", "/api/v1/tenants/acme/calls")[1]["calls"] == []
    assert hub.api("GET", "/api/v1/tenants/acme/extensions/101/state")[1]["sessions"] == []


def test_a_phone_that_keeps_reporting_is_not_timed_out(ghosts: Hub) -> None:
    hub = ghosts
    phone = Phone(hub.port, TOKEN, "102", mac="000B82000102")
    call = {"remote": "0711000002", "call_id": "ring-2"}
    assert phone.send("Incoming Call", **call).status == 200
    assert phone.send("Establish Call", **call).status == 200
    time.sleep(3)  # past ring_timeout: an answered call is not ringing
    assert [c["call_id"] for c in hub.api("GET", "/api/v1/tenants/acme/calls")[1]["calls"]] == [
        "ring-2"
    ]
    assert phone.send("Terminate Call", duration="3", **call).status == 200
    assert of_call(hub, "ring-2")[-1]["status"] == "answered"


def test_a_stuck_call_is_ended_by_hand(ghosts: Hub) -> None:
    hub = ghosts
    phone = Phone(hub.port, TOKEN, "103", mac="000B82000103")
    call = {"remote": "0711000003", "call_id": "stuck-3"}
    assert phone.send("Incoming Call", **call).status == 200
    assert phone.send("Establish Call", **call).status == 200
    [active] = [c for c in hub.api("GET", "/api/v1/tenants/acme/calls")[1]["calls"]
                if c["call_id"] == "stuck-3"]  # fmt: skip
    sid = active["session_id"]

    status, body = hub.api("POST", f"/api/v1/tenants/globex/calls/{sid}/end")
    assert status == 404 and body["error"]["code"] == "unknown-call"  # not globex's call
    status, body = hub.api("POST", f"/api/v1/tenants/acme/calls/{sid}/end")
    assert status == 200, body
    assert [e["event_type"] for e in body["events"]] == ["target_ended", "call_ended", "call_cdr"]
    logged = of_call(hub, "stuck-3")[-3:]
    assert [e["seq"] for e in logged] == [e["seq"] for e in body["events"]]
    assert all(e["session_id"] == sid for e in logged)
    assert (logged[-1]["end_reason"], logged[-1]["status"]) == ("ended_by_api", "answered")
    status, cdrs = hub.api("GET", "/api/v1/tenants/acme/cdrs?limit=1000")
    assert status == 200
    assert [c for c in cdrs["cdrs"] if c["session_id"] == sid]
    assert hub.api("GET", "/api/v1/tenants/acme/extensions/103/state")[1]["sessions"] == []

    status, body = hub.api("POST", f"/api/v1/tenants/acme/calls/{sid}/end")
    assert status == 404 and body["error"]["code"] == "unknown-call"  # ended already
    assert hub.api("POST", "/api/v1/tenants/acme/calls/not-a-session/end")[0] == 422
    # A tenant key may end its own tenant's calls, not another's.
    status, key = hub.api("POST", "/api/v1/tenants/globex/api-keys", {})
    assert status == 201, key
    status, _ = hub.api("POST", f"/api/v1/tenants/acme/calls/{sid}/end", key=key["key"])
    assert status == 403


def test_a_transfer_target_that_rang_first_survives_a_kill_and_joins_the_call(
    ghosts: Hub,
) -> None:
    """The target's ring came before the transfer report, past merge_window: it is held
    back (answered 200 with no event yet), kept across a SIGKILL, and the transfer takes it
    into the call: one call, one CDR (it was two calls)."""
    hub = ghosts
    a = Phone(hub.port, TOKEN, "101", mac="000B82000101")
    c = Phone(hub.port, TOKEN, "103", mac="000B82000103")
    number = "0711000777"
    assert a.send("Incoming Call", remote=number, call_id="xa").status == 200
    assert a.send("Establish Call", remote=number, call_id="xa").status == 200
    time.sleep(1.5)  # past merge_window (1 s): not a ring group member
    r = c.send("Incoming Call", remote=number, call_id="xc")
    assert r.status == 200 and r.json()["events"] == []  # held back, durable
    hub.kill()
    hub.start()
    assert a.send("Blind Transferring", remote="103", call_id="xa").status == 200
    assert a.send("Terminate Call", remote=number, call_id="xa", duration="2").status == 200
    assert c.send("Establish Call", remote=number, call_id="xc").status == 200
    assert c.send("Terminate Call", remote=number, call_id="xc", duration="4").status == 200
    events = [e for e in hub.all_events() if e.get("call_id") in ("xa", "xc")]
    cdrs = [e for e in events if e["event_type"] == "call_cdr"]
    assert len(cdrs) == 1, [(e["event_type"], e["session_id"]) for e in events]
    assert sorted(cdrs[0]["extensions"]) == ["101", "103"] and cdrs[0]["status"] == "answered"
    assert len({e["session_id"] for e in events}) == 1
