"""A real Kamailio (Debian's 5.6, running what `callhook kamailio-config` prints) feeds a real
hub; SIPp places and answers the calls. Checked where users see it: the event log, a WSI
subscriber and a webhook endpoint."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import wsi
from tests.support.hub import Hub
from tests.support.kamailio import (
    DOMAIN,
    Kamailio,
    Uas,
    ensure_installed,
    free_udp_port,
    register,
    sipp,
)
from tests.support.phone import Phone
from tests.support.sink import Sink

pytestmark = pytest.mark.slow


@dataclass
class Sip:
    hub: Hub
    kam: Kamailio
    sink: Sink
    uas_port: int
    uac_port: int

    def answer_with(self, scenario: str, calls: int = 1, pause_ms: int = 100, **keys: str) -> Uas:
        """Register extension 102 at a SIPp callee running `scenario` (ringing `pause_ms`)."""
        register(self.kam.port, self.uas_port, "102", 3600, ua="SIPp callee")
        return Uas(scenario, self.uas_port, calls, pause_ms, keys)

    def call(self, scenario: str, callee: str = "102", **kw: Any) -> None:
        run = sipp(scenario, self.kam.port, port=self.uac_port, callee=callee, **kw)
        calls = kw.get("calls", 1)
        assert run.successful == calls and run.failed == 0, run.output + self.kam.logs()


@pytest.fixture
def sip(tmp_path: Path) -> Iterator[Sip]:
    ensure_installed()
    with Sink() as sink:
        hub = Hub(tmp_path, server_config="allow_private_targets = true").start()
        kam: Kamailio | None = None
        try:
            status, body = hub.api(
                "POST",
                "/api/v1/tenants/acme/webhooks",
                {"url": sink.url("/events"), "topics": ["extension_events", "cdr_events"]},
            )
            assert status == 201, body
            port = free_udp_port()
            # No --key: the command creates the tenant's "kamailio" key in the hub's database.
            text = Kamailio.generate(
                hub.config_path, hub.base, port, expiry_check="1", min_expires="1"
            )
            kam = Kamailio(tmp_path, text, port).start()
            yield Sip(hub, kam, sink, free_udp_port(), free_udp_port())
        finally:
            if kam is not None:
                kam.stop()
            hub.stop()


def until(cond: Callable[[], Any], timeout: float = 20.0, what: str = "events") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout}s")
        time.sleep(0.05)


def call_events(hub: Hub, n_cdrs: int = 1) -> list[dict[str, Any]]:
    """The tenant's events once `n_cdrs` CDRs are in the log."""

    def ready() -> list[dict[str, Any]] | None:
        events = hub.all_events()
        cdrs = [e for e in events if e["event_type"] == "call_cdr"]
        return events if len(cdrs) >= n_cdrs else None

    events: list[dict[str, Any]] = until(ready, what=f"{n_cdrs} call_cdr")
    return events


def keys(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events if e["event_type"] != "extension_register"]


async def test_answered_call_reaches_log_wsi_and_webhooks(sip: Sip) -> None:
    ws = await wsi.login(sip.hub.wsi_port, name="acme", password="tenant-secret")
    topics = [
        {"topic": "extension_events", "keys": wsi.ALL_EXTENSION_KEYS},
        {"topic": "cdr_events", "keys": ["call_cdr"]},
    ]
    assert await wsi.call(ws, {"command": "subscribe", "topics": topics}) == {"status": 0}
    uas = sip.answer_with("uas_answer.xml")
    await asyncio.to_thread(sip.call, "uac_call.xml", pause_ms=2000, name="Alice Liddell")
    assert uas.wait().successful == 1

    events = call_events(sip.hub)
    assert keys(events) == [
        "call_start",
        "target_add",
        "target_ringing",
        "call_established",
        "target_ended",
        "call_ended",
        "call_cdr",
    ]
    assert all(e["source"] == "kamailio" for e in events)
    # each report has its own id: Kamailio's start time, process id, a per-process counter
    ids = {e["report_id"] for e in events}
    assert len(ids) >= 4 and all(re.fullmatch(r"\d+\.\d+\.\d+", i) for i in ids), ids
    sessions = {e["session_id"] for e in events if "session_id" in e}
    assert len(sessions) == 1
    start = events[[e["event_type"] for e in events].index("call_start")]
    assert start["caller"] == "sip:101@acme.example.com"
    assert start["callee"] == "sip:102@acme.example.com"
    assert start["direction"] == "ext"
    assert start["caller_display_name"] == "Alice Liddell"
    cdr = events[-1]
    assert cdr["status"] == "answered"
    assert abs(cdr["talk_seconds"] - 2.0) <= 1.0  # SIPp talked 2 s (-d 2000)
    assert cdr["call_id"] == start["call_id"]

    got = await wsi.events_until(ws, lambda evs: any(e["event_type"] == "call_cdr" for e in evs))
    assert [e["event_type"] for e in got if e["event_type"] != "extension_register"] == keys(events)
    await ws.close()

    hooks = until(
        lambda: [
            r.json() for r in sip.sink.requests("/events") if r.json()["event_type"] == "call_cdr"
        ],
        what="webhook call_cdr",
    )
    assert hooks[0]["cdr_id"] == cdr["cdr_id"]


@pytest.mark.parametrize(
    ("scenario", "callee", "code"),
    [("uas_busy.xml", "102", 486), (None, "103", 480)],
    ids=["busy-486", "offline-480"],
)
def test_refused_call_is_call_fail_with_the_sip_status(
    sip: Sip, scenario: str | None, callee: str, code: int
) -> None:
    uas = sip.answer_with(scenario) if scenario else None  # 103 is not registered: offline
    sip.call("uac_refused.xml", callee=callee)
    if uas is not None:
        assert uas.wait().successful == 1
    events = call_events(sip.hub)
    fail = [e for e in events if e["event_type"] == "call_fail"]
    assert len(fail) == 1 and fail[0]["fail_code"] == code, events
    assert fail[0]["callee"] == f"sip:{callee}@acme.example.com"
    assert events[-1]["status"] == "failed"
    assert keys(events)[-2:] == ["call_fail", "call_cdr"]  # one closing event, then the CDR


def test_cancel_while_ringing_is_a_missed_call(sip: Sip) -> None:
    uas = sip.answer_with("uas_ring.xml")
    # Rings longer than the hub's minimum ring time (5 s): missed, not abandoned.
    sip.call("uac_cancel.xml", pause_ms=5500)
    assert uas.wait().successful == 1
    events = call_events(sip.hub)
    assert keys(events)[-2:] == ["call_noanswer", "call_cdr"]
    assert "call_established" not in keys(events) and "target_noanswer" in keys(events)
    assert events[-1]["status"] == "missed"
    assert events[-1]["talk_seconds"] == 0


def test_a_302_is_a_call_reroute_and_the_call_goes_on_to_the_new_target(sip: Sip) -> None:
    # 102 redirects to 104 (registered at the same SIPp); the caller follows the redirect
    # with the same Call-ID, 104 rings, answers and talks 1 s.
    register(sip.kam.port, sip.uas_port, "104", 3600, ua="SIPp callee")
    uas = sip.answer_with("uas_redirect.xml", dom=DOMAIN, target="104")
    sip.call("uac_redirect.xml", pause_ms=1000, keys={"target": "104"})
    assert uas.wait().successful == 1
    events = call_events(sip.hub)
    assert keys(events) == [
        "call_start",
        "call_reroute",
        "target_fail",
        "target_add",
        "target_ringing",
        "call_established",
        "target_ended",
        "call_ended",
        "call_cdr",
    ], events
    assert len({e["session_id"] for e in events if "session_id" in e}) == 1
    calls = {e["event_type"]: e for e in events}
    reroute = calls["call_reroute"]
    assert reroute["reason"] == "redirect"
    assert reroute["call_target"] == "sip:104@acme.example.com"
    assert reroute["transferred_by"] == "sip:102@acme.example.com"
    assert calls["target_fail"]["fail_code"] == 302
    established = calls["call_established"]
    assert established["call_target"] == "sip:104@acme.example.com"
    cdr = events[-1]
    assert cdr["status"] == "answered" and abs(cdr["talk_seconds"] - 1.0) <= 1.0


def test_a_302_not_followed_ends_as_call_fail_302(sip: Sip) -> None:
    uas = sip.answer_with("uas_redirect.xml", dom=DOMAIN, target="104")
    sip.call("uac_redirect_dropped.xml", keys={"target": "104"})
    uas.stop()
    events = call_events(sip.hub)
    assert keys(events) == ["call_start", "call_reroute", "target_fail", "call_fail", "call_cdr"]
    assert events[-2]["fail_code"] == 302
    assert events[-1]["status"] == "failed" and events[-1]["talk_seconds"] == 0


def test_hold_and_resume_by_reinvite(sip: Sip) -> None:
    uas = sip.answer_with("uas_answer.xml")
    sip.call("uac_hold.xml", pause_ms=500)
    assert uas.wait().successful == 1
    events = call_events(sip.hub)
    held = [e for e in events if e["event_type"] in ("call_hold", "call_unhold")]
    assert [e["event_type"] for e in held] == ["call_hold", "call_unhold"]
    for e in held:
        assert e["aor"] == "sip:101@acme.example.com"
        assert e["peer_aor"] == "sip:102@acme.example.com"
    assert events[-1]["status"] == "answered"


def test_register_then_expiry(sip: Sip) -> None:
    register(sip.kam.port, sip.uas_port, "102", 2, ua="Yealink SIP-T46U 108.86.0.20")

    def registrations() -> list[dict[str, Any]]:
        return [e for e in sip.hub.all_events() if e["event_type"] == "extension_register"]

    first = until(registrations, what="extension_register")[0]
    assert first["extension"] == "sip:102@acme.example.com"
    assert first["source"] == "kamailio"
    (contact,) = first["registration_contacts"]
    assert contact["contact_uri"] == f"<sip:102@127.0.0.1:{sip.uas_port}>"
    assert contact["user_agent"] == "Yealink SIP-T46U 108.86.0.20"
    assert contact["received_from"] == f"127.0.0.1:{sip.uas_port}"
    assert 1 <= contact["expires"] - int(first["time"]) <= 3
    status, state = sip.hub.api("GET", "/api/v1/tenants/acme/extensions/102/state")
    assert status == 200 and state["registered"] is True, state

    # Nobody refreshes it: Kamailio's expiry scan (every second here) removes it.
    gone = until(lambda: [e for e in registrations() if "removed_contacts" in e], what="expiry")
    assert "registration_contacts" not in gone[0]
    assert gone[0]["removed_contacts"][0]["contact_uri"].startswith(
        f"<sip:102@127.0.0.1:{sip.uas_port}>"
    )
    status, state = sip.hub.api("GET", "/api/v1/tenants/acme/extensions/102/state")
    assert state["registered"] is False, state


def test_sign_off_removes_the_contact(sip: Sip) -> None:
    register(sip.kam.port, sip.uas_port, "101", 3600)
    register(sip.kam.port, sip.uas_port, "101", 0)

    def removed() -> list[dict[str, Any]]:
        events = sip.hub.all_events()
        return [
            e for e in events if e["event_type"] == "extension_register" and "removed_contacts" in e
        ]

    (off,) = until(removed, what="sign-off")
    assert off["removed_contacts"][0]["contact_uri"].endswith(";expires=0")


def test_fifty_concurrent_calls_none_lost(sip: Sip) -> None:
    uas = sip.answer_with("uas_answer.xml", calls=50)
    # 20 calls/s, each talking 3 s: all 50 are up at once at the peak.
    sip.call("uac_call.xml", calls=50, rate=20, pause_ms=3000, timeout=90)
    assert uas.wait(60).successful == 50
    events = call_events(sip.hub, 50)
    cdrs = [e for e in events if e["event_type"] == "call_cdr"]
    assert len(cdrs) == 50
    assert len({c["call_id"] for c in cdrs}) == 50
    assert len({c["session_id"] for c in cdrs}) == 50
    assert all(c["status"] == "answered" for c in cdrs)
    starts = [e for e in events if e["event_type"] == "call_start"]
    assert len(starts) == 50
    ended = [e for e in events if e["event_type"] == "call_ended"]
    assert len(ended) == 50
    assert json.dumps(events)  # every event is plain JSON


def test_calls_while_the_hub_restarts_are_not_lost(sip: Sip) -> None:
    uas = sip.answer_with("uas_answer.xml", calls=3)
    sip.call("uac_call.xml", pause_ms=200)
    call_events(sip.hub, 1)
    assert sip.hub.stop() == 0
    # Two calls while the hub is down: Kamailio keeps their reports and sends them again.
    sip.call("uac_call.xml", calls=2, pause_ms=200)
    assert uas.wait().successful == 3
    sip.hub.start()
    events = call_events(sip.hub, 3)
    cdrs = [e for e in events if e["event_type"] == "call_cdr"]
    assert len(cdrs) == 3 and len({c["call_id"] for c in cdrs}) == 3
    assert [c["status"] for c in cdrs] == ["answered"] * 3
    assert len([e for e in events if e["event_type"] == "call_start"]) == 3


@pytest.mark.parametrize("reports", [True, False], ids=["reports", "no-reports"])
def test_generated_configuration_passes_kamailios_own_check(tmp_path: Path, reports: bool) -> None:
    ensure_installed()
    hub = Hub(tmp_path)  # its config file only: the command needs no running hub with --key
    options = {} if reports else {"no_reports": ""}
    text = Kamailio.generate(
        hub.config_path, "http://127.0.0.1:8080", 5060, key="ck_0123456789abcdef", **options
    )
    assert ("#!define WITH_CALLHOOK" in text) is reports
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(text)
    done = subprocess.run(["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_call_seen_by_kamailio_and_by_the_phone_is_one_session(sip: Sip) -> None:
    """The called phone also sends Action URLs for the call (same SIP Call-ID)."""
    uas = sip.answer_with("uas_answer.xml")
    phone = Phone(sip.hub.port, "gs-7f3a9c", "102", mac="000B82000102")
    call_id = "both-1@test"
    placed = threading.Thread(
        target=sip.call,
        args=("uac_call.xml",),
        kwargs={"pause_ms": 3000, "call_ids": "both-%u@test"},
    )
    placed.start()
    try:
        # Kamailio reported the answer: the phone now says what it saw, a little late.
        until(lambda: [e for e in sip.hub.all_events() if e["event_type"] == "call_established"])
        v = {"remote": "101", "call_id": call_id}
        assert phone.send("Incoming Call", **v).status == 200
        assert phone.send("Establish Call", **v).status == 200
    finally:
        placed.join(60)
    assert uas.wait().successful == 1
    call_events(sip.hub)
    # The phone's hangup comes after Kamailio's, with a different talk time: too late, and
    # the server's word stands. (Its answer is sent after whatever it caused is in the log.)
    assert phone.send("Terminate Call", duration="99", **v).status == 200
    events = sip.hub.all_events()
    assert len({e["session_id"] for e in events if "session_id" in e}) == 1
    counts = {k: keys(events).count(k) for k in set(keys(events))}
    assert counts == {
        "call_start": 1,
        "target_add": 1,
        "target_ringing": 1,
        "call_established": 1,
        "target_ended": 1,
        "call_ended": 1,
        "call_cdr": 1,
    }, keys(events)
    assert all(e["call_id"] == call_id for e in events if "call_id" in e)
    assert abs(events[-1]["talk_seconds"] - 3) <= 1
    # Kamailio reported the call, so every lifecycle event is its.
    assert all(e.get("source") == "kamailio" for e in events)


def test_kamailios_talk_time_wins_over_a_phones_earlier_hangup(sip: Sip) -> None:
    uas = sip.answer_with("uas_answer.xml")
    phone = Phone(sip.hub.port, "gs-7f3a9c", "102", mac="000B82000102")
    v = {"remote": "101", "call_id": "early-1@test"}
    placed = threading.Thread(
        target=sip.call,
        args=("uac_call.xml",),
        kwargs={"pause_ms": 3000, "call_ids": "early-%u@test"},
    )
    placed.start()
    try:
        until(lambda: [e for e in sip.hub.all_events() if e["event_type"] == "call_established"])
        # The phone says the call ended, with a talk time of its own, while SIP still runs.
        assert phone.send("Terminate Call", duration="99", **v).status == 200
    finally:
        placed.join(60)
    assert uas.wait().successful == 1
    events = call_events(sip.hub)
    (cdr,) = [e for e in events if e["event_type"] == "call_cdr"]
    assert cdr["status"] == "answered" and cdr["source"] == "kamailio"
    assert abs(cdr["talk_seconds"] - 3) <= 1, cdr
    assert len({e["session_id"] for e in events if "session_id" in e}) == 1
    assert keys(events).count("call_ended") == 1


def test_calls_after_kamailio_restarts_are_reported(sip: Sip) -> None:
    uas = sip.answer_with("uas_answer.xml")
    sip.call("uac_call.xml", pause_ms=200)
    assert uas.wait().successful == 1
    call_events(sip.hub, 1)
    sip.kam.stop()
    sip.kam.start()  # a new process: a new connection to the hub, an empty location table
    uas = sip.answer_with("uas_answer.xml")
    sip.call("uac_call.xml", pause_ms=200)
    assert uas.wait().successful == 1
    cdrs = [e for e in call_events(sip.hub, 2) if e["event_type"] == "call_cdr"]
    assert len({c["call_id"] for c in cdrs}) == 2
    assert [c["status"] for c in cdrs] == ["answered", "answered"]
