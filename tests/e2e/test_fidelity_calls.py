"""How calls read on the wire, against PortSIP's samples and Grandstream's phones, through a
real hub, a real phone socket and a real Call Events sink.

PortSIP's samples are in tests/data/portsip_examples.json (see test_fidelity_portsip.py);
here their domain is changed to the test tenant's (acme.example.com).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Recorded, Sink

TOKEN = "gs-7f3a9c"
DOMAIN = "acme.example.com"
SAMPLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "portsip_examples.json")
    .read_text()
    .replace("sipiw.com", DOMAIN)
)["events"]


def sample(key: str, **changes: Any) -> dict[str, Any]:
    return next(e for e in SAMPLES if e["event_type"] == key) | changes


def rules(sink: Sink) -> str:
    return "".join(
        f'[[tenant.call_event]]\nextension = "{ext}"\nevent = "{event}"\n'
        f'url = "{sink.url(path)}"\nmethod = "GET"\n'
        for ext, event, path in (
            ("101", "hangup", "/ce/101/hangup"),
            ("103", "hangup", "/ce/103/hangup"),
        )
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Sink]]:
    with Sink() as sink:
        hub = Hub(
            tmp_path_factory.mktemp("calls"),
            server_config="allow_private_targets = true",
            acme_config=rules(sink),
            extra_config="\n[delivery]\nschedule = [0, 0.2, 0.5]\n",
        ).start()
        try:
            yield hub, sink
        finally:
            hub.stop()


def call_events(hub: Hub, call_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.all_events() if e.get("call_id") == call_id]


def keys(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def publish(hub: Hub, body: dict[str, Any]) -> None:
    status, reply = hub.api("POST", "/api/v1/tenants/acme/events", body)
    assert status == 201, reply


def requests_for(sink: Sink, path: str, call_id: str, n: int = 1) -> list[Recorded]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = [r for r in sink.requests(path) if r.query_params.get("CallID") == call_id]
        if len(got) >= n:
            time.sleep(0.1)  # a duplicate would come right behind
            return [r for r in sink.requests(path) if r.query_params.get("CallID") == call_id]
        time.sleep(0.02)
    raise AssertionError(f"no request under {path} for {call_id}")


# -- missed calls: call_noanswer / target_noanswer then call_cdr, no call_ended ----------------


def test_portsip_noanswer_sample_closes_the_call_without_call_ended(
    env: tuple[Hub, Sink],
) -> None:
    hub, sink = env
    # PortSIP: "call is a no answer in the specified time(seconds) then hang up due to
    # timeout": the call_noanswer is the call's end.
    noanswer = sample("call_noanswer")
    publish(hub, noanswer)
    events = call_events(hub, noanswer["call_id"])
    assert keys(events) == ["call_start", "target_noanswer", "call_noanswer", "call_cdr"]
    end = events[2]
    assert (end["caller"], end["callee"]) == (f"sip:102@{DOMAIN}", f"sip:103@{DOMAIN}")
    assert events[-1]["status"] == "missed"
    # The callee's VoipNow Hangup rule hears of it, as a call that was not answered.
    (hangup,) = requests_for(sink, "/ce/103/hangup", noanswer["call_id"])
    assert hangup.query_params["CallStatus"] == "UNKNOWN"
    assert hangup.query_params["EventType"] == "hangup"


def test_phone_missed_call_closes_without_call_ended(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "101")
    reply = phone.send("Missed Call", remote="0711222333", call_id="missed-1")
    assert reply.status == 200
    assert reply.json()["events"] == ["call_start", "target_noanswer", "call_noanswer", "call_cdr"]
    events = call_events(hub, "missed-1")
    assert keys(events) == ["call_start", "target_noanswer", "call_noanswer", "call_cdr"]
    assert events[-1]["status"] == "missed"
    (hangup,) = requests_for(sink, "/ce/101/hangup", "missed-1")
    assert hangup.query_params["CallStatus"] == "UNKNOWN"


def test_answered_call_still_ends_with_call_ended(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "101")
    call = {"remote": "0711222444", "call_id": "answered-1"}
    for event in ("Incoming Call", "Establish Call", "Terminate Call"):
        assert phone.send(event, **call).status == 200
    events = call_events(hub, "answered-1")
    assert keys(events)[-2:] == ["call_ended", "call_cdr"]
    assert "call_noanswer" not in keys(events)
    (hangup,) = requests_for(sink, "/ce/101/hangup", "answered-1")
    assert hangup.query_params["CallStatus"] == "ANSWER"


# -- event time never goes backwards within one call --------------------------------------


def test_a_late_terminate_does_not_stamp_the_start_after_the_answer(
    env: tuple[Hub, Sink],
) -> None:
    hub, _ = env
    phone = Phone(hub.port, TOKEN, "102")
    # Its Outgoing Call and Establish Call were lost: the Terminate Call says 30 s of talk.
    reply = phone.send("Terminate Call", remote="0711333444", call_id="late-1", duration="30")
    assert reply.status == 200
    events = call_events(hub, "late-1")
    assert keys(events) == ["call_start", "call_established", "call_ended", "call_cdr"]
    times = [int(e["time"]) for e in events]
    assert times == sorted(times)
    assert times[2] - times[1] in (29, 30, 31)  # answered 30 s before the hangup
    cdr = events[-1]
    assert cdr["start_time"] == events[0]["time"] and cdr["talk_seconds"] == 30


# -- parties as SIP addresses, the plain number alongside ---------------------------------------


def test_outside_numbers_are_sip_addresses_too(env: tuple[Hub, Sink]) -> None:
    hub, _ = env
    phone = Phone(hub.port, TOKEN, "101")
    call = {"remote": "0711222555", "call_id": "party-1"}
    for event in ("Incoming Call", "Establish Call", "Hold Call", "Terminate Call"):
        assert phone.send(event, **call).status == 200
    events = {e["event_type"]: e for e in call_events(hub, "party-1")}
    outside, ours = f"sip:0711222555@{DOMAIN}", f"sip:101@{DOMAIN}"
    for key in ("call_start", "call_established", "call_ended", "call_cdr"):
        e = events[key]
        assert (e["caller"], e["callee"]) == (outside, ours), key
        assert (e["caller_number"], e["callee_number"]) == ("0711222555", "101"), key
    assert events["target_ringing"]["call_target"] == ours
    assert events["target_ringing"]["call_target_number"] == "101"
    hold = events["call_hold"]
    assert (hold["aor"], hold["peer_aor"]) == (ours, outside)
    assert (hold["aor_number"], hold["peer_aor_number"]) == ("101", "0711222555")
