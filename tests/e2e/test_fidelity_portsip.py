"""PortSIP's sample event messages, sent verbatim to a real hub as a PBX would publish them.

The samples (tests/data/portsip_examples.json) are every event message of PortSIP's
"Going Real-Time with PortSIP PBX Pub/Sub" tutorial. The hub here has a tenant shaped like
them: SIP domain sipiw.com, extensions 102 and 103.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone

EXAMPLES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "data" / "portsip_examples.json").read_text()
)["events"]

TENANT = "sipiw"
PORTSIP_TENANT = """
[[tenant]]
name = "sipiw"
password = "111111"
domain = "sipiw.com"
ingest_token = "pbx-0001"

[[tenant.extension]]
number = "102"
password = "secret102"
groups = ["team"]

[[tenant.extension]]
number = "103"
password = "secret103"
groups = ["team"]
"""


@pytest.fixture(scope="module")
def pbx_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("pbx"), extra_config=PORTSIP_TENANT).start()
    try:
        yield h
    finally:
        h.stop()


def publish(hub: Hub, body: dict[str, Any]) -> list[dict[str, Any]]:
    status, reply = hub.api("POST", f"/api/v1/tenants/{TENANT}/events", body)
    assert status == 201, reply
    out: list[dict[str, Any]] = reply["events"]
    return out


def logged(hub: Hub, call_id: str) -> list[dict[str, Any]]:
    return [e for e in hub.all_events(TENANT) if e.get("call_id") == call_id]


def example(key: str) -> dict[str, Any]:
    return copy.deepcopy(next(e for e in EXAMPLES if e["event_type"] == key))


def test_the_samples_are_the_whole_tutorial() -> None:
    # Nine messages: two registrations, hold, unhold and five call lifecycle samples.
    assert [e["event_type"] for e in EXAMPLES] == [
        "extension_register",
        "extension_register",
        "call_hold",
        "call_unhold",
        "call_start",
        "call_established",
        "call_ended",
        "call_noanswer",
        "call_fail",
    ]


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_every_sample_is_accepted_verbatim(pbx_hub: Hub, index: int) -> None:
    sample = EXAMPLES[index]
    key = sample["event_type"]
    committed = publish(pbx_hub, sample)
    assert key in [e["event_type"] for e in committed]
    seqs = {e["seq"] for e in committed if e["event_type"] == key}
    (event,) = [e for e in pbx_hub.all_events(TENANT) if e["seq"] in seqs]
    assert event["topic"] == "extension_events" and event["tenant_name"] == TENANT
    for field in ("extension", "call_id", "caller", "callee", "aor", "peer_aor", "fail_code"):
        if field in sample:
            assert event[field] == sample[field], field
    for field in ("registration_contacts", "removed_contacts"):
        if field in sample:
            assert event[field] == sample[field]


def test_registration_samples_drive_presence(pbx_hub: Hub) -> None:
    publish(pbx_hub, EXAMPLES[0])
    status, state = pbx_hub.api("GET", f"/api/v1/tenants/{TENANT}/extensions/102/state")
    assert status == 200 and state["registered"] is True
    assert sorted(c["user_agent"] for c in state["contacts"]) == [
        "PortSIP UC Client iOS - v16.0.001",
        "Test SIPMaster for IOS",
    ]
    # The un-register sample has no registration_contacts: nothing is registered any more.
    publish(pbx_hub, EXAMPLES[1])
    status, state = pbx_hub.api("GET", f"/api/v1/tenants/{TENANT}/extensions/102/state")
    assert state["registered"] is False and state["contacts"] == []


def state(hub: Hub, number: str) -> dict[str, Any]:
    status, body = hub.api("GET", f"/api/v1/tenants/{TENANT}/extensions/{number}/state")
    assert status == 200, body
    return dict(body)


def test_a_pbx_call_is_one_session_with_presence_and_a_cdr(pbx_hub: Hub) -> None:
    call_id = "pbx-call-1"
    start = example("call_start") | {"call_id": call_id}
    established = example("call_established") | {"call_id": call_id}
    ended = example("call_ended") | {"call_id": call_id}

    publish(pbx_hub, start)
    session = logged(pbx_hub, call_id)[0]["session_id"]
    assert session in state(pbx_hub, "102")["sessions"]  # the caller is in the call
    # The called phone's own report joins the PBX's call: the same session, not a new one.
    phone = Phone(pbx_hub.port, "pbx-0001", "103", mac="000B82000103")
    assert phone.send("Incoming Call", remote="102", call_id=call_id).status == 200
    assert session in state(pbx_hub, "103")["sessions"]
    publish(pbx_hub, established)
    publish(pbx_hub, ended)

    events = logged(pbx_hub, call_id)
    keys = [e["event_type"] for e in events]
    assert keys == [
        "call_start",
        "target_add",
        "target_ringing",
        "call_established",
        "target_ended",
        "call_ended",
        "call_cdr",
    ]
    assert len({e["session_id"] for e in events}) == 1
    cdr = events[-1]
    assert (cdr["caller"], cdr["callee"], cdr["call_target"]) == (
        "sip:102@sipiw.com",
        "sip:103@sipiw.com",
        "sip:103@sipiw.com",
    )
    assert (cdr["status"], cdr["direction"], cdr["end_reason"]) == ("answered", "ext", "hangup")
    assert cdr["extensions"] == ["102", "103"]
    for number in ("102", "103"):
        assert session not in state(pbx_hub, number)["sessions"]
    status, cdrs = pbx_hub.api("GET", f"/api/v1/tenants/{TENANT}/cdrs")
    assert status == 200, cdrs
    assert any(c.get("call_id") == call_id for c in cdrs["cdrs"])
    # The PBX's call_ended again: a repeat of a closed call, nothing new.
    assert publish(pbx_hub, ended) == []


def test_a_pbx_failed_call_fails_with_its_code(pbx_hub: Hub) -> None:
    publish(pbx_hub, example("call_fail"))
    events = logged(pbx_hub, example("call_fail")["call_id"])
    fail = next(e for e in events if e["event_type"] == "call_fail")
    cdr = next(e for e in events if e["event_type"] == "call_cdr")
    assert fail["fail_code"] == 480 and cdr["status"] == "failed"


def test_an_outside_party_keeps_the_trunk_domain_the_pbx_gave(pbx_hub: Hub) -> None:
    call = {
        "call_id": "pbx-trunk-1",
        "caller": "sip:0711222333@carrier.example.net",
        "callee": "sip:103@sipiw.com",
    }
    publish(pbx_hub, {"event_type": "call_start", **call})
    publish(pbx_hub, {"event_type": "call_established", "call_target": call["callee"], **call})
    publish(pbx_hub, {"event_type": "call_ended", **call})
    events = logged(pbx_hub, "pbx-trunk-1")
    assert [e["event_type"] for e in events][-2:] == ["call_ended", "call_cdr"]
    for e in events:
        if "caller" in e:
            assert e["caller"] == "sip:0711222333@carrier.example.net", e["event_type"]
            assert e["caller_number"] == "0711222333"
            assert e["callee"] == "sip:103@sipiw.com"
    assert events[-1]["direction"] == "inbound"
