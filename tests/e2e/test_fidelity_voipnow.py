"""VoipNow's Call Events page, as written: its event and method spellings, its "extended"
extension numbers (`yyyy*zzz`) and `CalledDID`, through a real hub to a real sink.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Recorded, Sink

TOKEN = "vn-000300"


def voip_tenant(sink: Sink) -> str:
    """A tenant using VoipNow's extended numbers, with rules written as VoipNow's page does."""

    def rule(ext: str, event: str, method: str, path: str) -> str:
        return (
            f'[[tenant.call_event]]\nextension = "{ext}"\nevent = "{event}"\n'
            f'method = "{method}"\nurl = "{sink.url(path)}"\n'
        )

    return (
        """
[[tenant]]
name = "voip"
password = "voip-secret"
domain = "voip.example.com"
ingest_token = "vn-000300"
extended_prefix = "0003"

[[tenant.extension]]
number = "101"
password = "secret101"
display_name = "Ann"

[[tenant.extension]]
number = "102"
password = "secret102"
display_name = "Ben"
"""
        + rule("101", "Dial-In", "get", "/vn/101/dial_in")
        + rule("101", "Answer on incoming call", "Get", "/vn/101/answer_in")
        + rule("101", "Hangup", "post", "/vn/101/hangup")
        + rule("102", "Dial-Out", "GET", "/vn/102/dial_out")
        + rule("102", "Answer on outgoing call (by the other party)", "get", "/vn/102/answer_out")
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Sink]]:
    with Sink() as sink:
        hub = Hub(
            tmp_path_factory.mktemp("voipnow"),
            server_config="allow_private_targets = true",
            extra_config=voip_tenant(sink) + "\n[delivery]\nschedule = [0, 0.2, 0.5]\n",
        ).start()
        try:
            yield hub, sink
        finally:
            hub.stop()


def params(r: Recorded) -> dict[str, str]:
    return r.query_params if r.method == "GET" else r.form


def one(sink: Sink, path: str, call_id: str) -> Recorded:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = [r for r in sink.requests(path) if params(r).get("CallID") == call_id]
        if got:
            time.sleep(0.1)  # a duplicate would come right behind
            got = [r for r in sink.requests(path) if params(r).get("CallID") == call_id]
            assert len(got) == 1, got
            return got[0]
        time.sleep(0.02)
    raise AssertionError(f"no request under {path} for {call_id}")


# -- VoipNow's spellings ---------------------------------------------------------------------


def test_rules_in_voipnow_spelling_are_stored_as_ours(env: tuple[Hub, Sink]) -> None:
    hub, _ = env
    status, body = hub.api("GET", "/api/v1/tenants/voip/call-events")
    assert status == 200, body
    assert sorted((r["extension"], r["event"], r["method"]) for r in body["rules"]) == [
        ("101", "answer_incoming", "GET"),
        ("101", "dial_in", "GET"),
        ("101", "hangup", "POST"),
        ("102", "answer_outgoing", "GET"),
        ("102", "dial_out", "GET"),
    ]


@pytest.mark.parametrize(
    ("event", "method", "stored"),
    [
        ("Dial-Out", "post", ("dial_out", "POST")),
        ("Hangup", "Get", ("hangup", "GET")),
        ("Answer on outgoing call", "POST", ("answer_outgoing", "POST")),
    ],
)
def test_the_api_takes_voipnow_spellings(
    env: tuple[Hub, Sink], event: str, method: str, stored: tuple[str, str]
) -> None:
    hub, sink = env
    rule = {"extension": "102", "event": event, "method": method, "url": sink.url("/api/x")}
    status, created = hub.api("POST", "/api/v1/tenants/voip/call-events", rule)
    assert status == 201, created
    assert (created["event"], created["method"]) == stored
    path = f"/api/v1/tenants/voip/call-events/{created['id']}"
    status, patched = hub.api("PATCH", path, {"method": "get", "event": "Dial-In"})
    assert status == 200 and (patched["event"], patched["method"]) == ("dial_in", "GET")
    assert hub.api("DELETE", path)[0] == 204
    status, err = hub.api("POST", "/api/v1/tenants/voip/call-events", {**rule, "method": "PUT"})
    assert status == 422 and err["error"]["field"] == "method"


# -- extended extension numbers (yyyy*zzz) -----------------------------------------------------


def test_an_internal_call_in_extended_numbers(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    ann, ben = (Phone(hub.port, TOKEN, n, mac=f"000B8233{n:0>4}") for n in ("101", "102"))
    assert ben.send("Outgoing Call", remote="101", call_id="vn-int-1").status == 200
    assert ann.send("Incoming Call", remote="102", call_id="vn-int-1").status == 200
    assert ann.send("Establish Call", remote="102", call_id="vn-int-1").status == 200
    assert ann.send("Terminate Call", remote="102", call_id="vn-int-1", duration="3").status == 200

    dial_in = params(one(sink, "/vn/101/dial_in", "vn-int-1"))
    assert (dial_in["CalledExtension"], dial_in["CallerExtension"]) == ("0003*101", "0003*102")
    assert (dial_in["CalledNumber"], dial_in["CallerIDNum"]) == ("0003*101", "102")
    assert (dial_in["CallFlow"], dial_in["CallStatus"], dial_in["CalledDID"]) == (
        "IN",
        "CALLING",
        "",
    )
    dial_out = params(one(sink, "/vn/102/dial_out", "vn-int-1"))
    assert (dial_out["CallerExtension"], dial_out["CalledExtension"]) == ("0003*102", "0003*101")
    assert dial_out["CallFlow"] == "OUT"
    assert params(one(sink, "/vn/102/answer_out", "vn-int-1"))["CallStatus"] == "ANSWER"
    hangup = one(sink, "/vn/101/hangup", "vn-int-1")
    assert hangup.method == "POST"
    assert params(hangup)["CallStatus"] == "ANSWER"
    assert params(hangup)["CalledExtension"] == "0003*101"


def test_an_outside_caller_has_no_extension(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    ann = Phone(hub.port, TOKEN, "101", mac="000B82330101")
    assert ann.send("Incoming Call", remote="0711222333", call_id="vn-out-1").status == 200
    q = params(one(sink, "/vn/101/dial_in", "vn-out-1"))
    assert (q["CallerIDNum"], q["CallerExtension"], q["CalledExtension"]) == (
        "0711222333",
        "",
        "0003*101",
    )


# -- CalledDID ---------------------------------------------------------------------------------


def test_called_did_from_a_pbx_event(env: tuple[Hub, Sink]) -> None:
    hub, sink = env

    def publish(body: dict[str, Any]) -> None:
        status, reply = hub.api("POST", "/api/v1/tenants/voip/events", body)
        assert status == 201, reply

    call = {
        "call_id": "vn-did-1",
        "caller": "sip:0711222444@carrier.example.net",
        "callee": "sip:101@voip.example.com",
    }
    publish({"event_type": "call_start", "did": "+4930123456", **call})
    publish({"event_type": "call_established", "call_target": call["callee"], **call})
    publish({"event_type": "call_ended", **call})
    for path in ("/vn/101/dial_in", "/vn/101/answer_in", "/vn/101/hangup"):
        assert params(one(sink, path, "vn-did-1"))["CalledDID"] == "+4930123456", path
    cdr = next(e for e in hub.all_events("voip", key="call_cdr") if e["call_id"] == "vn-did-1")
    assert cdr["did"] == "+4930123456"


def test_called_did_from_a_phone_url_pair(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    ann = Phone(hub.port, TOKEN, "101", mac="000B82330101")
    reply = ann.send("Incoming Call", remote="0711222555", call_id="vn-did-2", did="0800123")
    assert reply.status == 200
    assert params(one(sink, "/vn/101/dial_in", "vn-did-2"))["CalledDID"] == "0800123"


def test_extended_prefix_through_the_api(env: tuple[Hub, Sink]) -> None:
    hub, _ = env
    status, created = hub.api(
        "POST", "/api/v1/tenants", {"name": "vn-api", "extended_prefix": "0042"}
    )
    assert status == 201 and created["extended_prefix"] == "0042", created
    status, err = hub.api("PATCH", "/api/v1/tenants/vn-api", {"extended_prefix": "00*1"})
    assert status == 422 and err["error"]["field"] == "extended_prefix"
    status, patched = hub.api("PATCH", "/api/v1/tenants/vn-api", {"extended_prefix": ""})
    assert status == 200 and patched["extended_prefix"] == ""
    assert hub.api("GET", "/api/v1/tenants/voip")[1]["extended_prefix"] == "0003"
