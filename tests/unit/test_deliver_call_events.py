"""Call Events (VoipNow style): which rule fires, with which parameters, in which request shape."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from callhook.deliver import call_events, payload, rules, signing
from callhook.events import Event

# VoipNow's default parameters, spelled exactly, plus ours (docs/webhooks.md)
SEED_PARAMS = {
    "CallID",
    "CallerIDNum",
    "CallerIDNam",
    "CalledDID",
    "CalledExtension",
    "CallStatus",
    "CallFlow",
    "CallerExtension",
    "CalledNumber",
}
ALL_PARAMS = SEED_PARAMS | {"CallerIDName", "EventID", "EventType"}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

INBOUND = {
    "call_id": "c-1",
    "caller": "0711222333",
    "callee": "sip:101@acme.example.com",
    "caller_display_name": "Jöe Smith",
    "direction": "inbound",
    "event_type": "call_start",
    "session_id": "500",
    "tenant_name": "acme",
    "time": "1700000000",
}
INTERNAL = {**INBOUND, "caller": "sip:102@acme.example.com", "direction": "ext"}


@pytest.mark.parametrize(
    ("rule_event", "ext", "body", "flow"),
    [
        ("dial_in", "101", INBOUND, "IN"),
        ("dial_in", "102", INTERNAL, None),
        ("dial_out", "102", INTERNAL, "OUT"),
        ("dial_out", "101", INBOUND, None),
        ("answer_incoming", "101", {**INBOUND, "event_type": "call_established"}, "IN"),
        ("answer_incoming", "103", {**INBOUND, "call_target": "sip:103@x"}, "IN"),
        ("answer_outgoing", "102", INTERNAL, "OUT"),
        ("answer_outgoing", "101", INTERNAL, None),
        ("hangup", "101", INTERNAL, "IN"),
        ("hangup", "102", INTERNAL, "OUT"),
        ("hangup", "104", INTERNAL, None),
    ],
)
def test_flow(rule_event: str, ext: str, body: dict[str, Any], flow: str | None) -> None:
    assert call_events.flow(rule_event, ext, body, ()) == flow


RING_102 = {**INBOUND, "event_type": "target_ringing", "call_target": "sip:102@acme.example.com"}
RING_101 = {**RING_102, "call_target": "sip:101@acme.example.com"}
ANSWERED_BY_102 = {**RING_102, "event_type": "call_established"}


@pytest.mark.parametrize(
    ("rule_event", "ext", "body", "flow"),
    [
        # every extension the call rings gets one dial_in: the callee with call_start,
        # the others with their target_ringing
        ("dial_in", "102", RING_102, "IN"),
        ("dial_in", "101", RING_101, None),  # had it with call_start
        ("dial_in", "103", RING_102, None),
        ("dial_out", "102", RING_102, None),
        # answer_incoming: only the target that answered, not the callee that only rang
        ("answer_incoming", "102", ANSWERED_BY_102, "IN"),
        ("answer_incoming", "101", ANSWERED_BY_102, None),
    ],
)
def test_flow_when_one_call_rings_two_extensions(
    rule_event: str, ext: str, body: dict[str, Any], flow: str | None
) -> None:
    assert call_events.flow(rule_event, ext, body, ("101", "102")) == flow


def test_dial_in_listens_to_call_start_and_target_ringing() -> None:
    assert call_events.listens_to("dial_in") == ("call_start", "target_ringing")
    # An unanswered call closes with call_noanswer or call_fail, never with call_ended.
    assert call_events.listens_to("hangup") == ("call_ended", "call_noanswer", "call_fail")
    assert call_events.listens_to("call_hold") == ("call_hold",)
    ep = rules.Endpoint("e1", "acme", "call_event", "http://x/", extension="102", event="dial_in")
    index = rules.Index([ep])
    ring = Event("acme", "target_ringing", RING_102, ("101", "102"))
    assert [(e.endpoint_id, f) for e, f in index.match(ring)] == [("e1", "IN")]


@pytest.mark.parametrize(
    "body", [RING_102, ANSWERED_BY_102, {**INBOUND, "event_type": "call_ended"}]
)
def test_an_incoming_request_is_about_the_rules_extension(body: dict[str, Any]) -> None:
    rule = {"target_ringing": "dial_in", "call_established": "answer_incoming"}
    p = call_events.params(
        rule.get(body["event_type"], "hangup"), "IN", body, event_id="1", extension="102"
    )
    assert p["CalledExtension"] == p["CalledNumber"] == "102"
    assert p["CallerIDNum"] == "0711222333" and p["CallerExtension"] == ""
    if body["event_type"] == "target_ringing":
        assert p["CallStatus"] == "CALLING"


def test_an_outgoing_request_keeps_the_callee() -> None:
    p = call_events.params("hangup", "OUT", INTERNAL, event_id="1", extension="102")
    assert p["CalledExtension"] == p["CalledNumber"] == "101"
    assert p["CallerExtension"] == "102"


def test_the_calls_parties_fill_what_the_body_lacks() -> None:
    ep = rules.Endpoint("e1", "acme", "call_event", "http://x/", extension="102", event="call_hold")
    hold = {"event_type": "call_hold", "aor": "sip:102@acme.example.com", "call_id": "c-1"}
    call = {"caller": "sip:102@acme.example.com", "callee": "0711", "direction": "outbound",
            "caller_display_name": "Bob"}  # fmt: skip
    values, _ = payload.call_event_values(
        ep, "9", hold, ("102",), {"call": call}, payload.Directory()
    )
    assert values["CallFlow"] == "OUT" and values["CallerIDNum"] == "102"
    assert values["CallerIDNam"] == values["CallerIDName"] == "Bob"
    assert values["CalledNumber"] == "0711" and values["CallerExtension"] == "102"
    # What the event itself says wins over what was known of the call.
    ended = {**INBOUND, "event_type": "call_ended", "caller_display_name": ""}
    ep = rules.Endpoint("e2", "acme", "call_event", "http://x/", extension="101", event="hangup")
    values, _ = payload.call_event_values(
        ep, "9", ended, ("101",), {"call": {"caller": "0999", "caller_display_name": "J M"}},
        payload.Directory(),
    )  # fmt: skip
    assert values["CallerIDNum"] == "0711222333" and values["CallerIDNam"] == "J M"


def test_involved_extension_fires_hangup_and_raw_keys() -> None:
    assert call_events.flow("hangup", "105", INBOUND, ("101", "105")) == "IN"
    assert call_events.flow("call_hold", "105", INBOUND, ("105",)) == "IN"


def test_params_inbound_dial_in() -> None:
    p = call_events.params("dial_in", "IN", INBOUND, event_id="77")
    assert set(p) == ALL_PARAMS
    assert p == {
        "CallID": "c-1",
        "CallerIDNum": "0711222333",
        "CallerIDNam": "Jöe Smith",
        "CalledDID": "",
        "CalledExtension": "101",
        "CallStatus": "CALLING",
        "CallFlow": "IN",
        "CallerExtension": "",
        "CalledNumber": "101",
        "CallerIDName": "Jöe Smith",
        "EventID": "77",
        "EventType": "dial_in",
    }


@pytest.mark.parametrize(
    ("key", "answered", "status"),
    [
        ("call_start", False, "CALLING"),
        ("call_established", False, "ANSWER"),
        ("call_ended", True, "ANSWER"),
        ("call_ended", False, "UNKNOWN"),
    ],
)
def test_call_status(key: str, answered: bool, status: str) -> None:
    body = {**INTERNAL, "event_type": key}
    p = call_events.params("hangup", "OUT", body, event_id="1", was_answered=answered)
    assert p["CallStatus"] == status
    assert p["CallerExtension"] == "102" and p["CalledExtension"] == "101"


def test_answered_from_the_event_when_it_says() -> None:
    assert call_events.answered({"answer_time": "1700000000"}) is True
    assert call_events.answered({"answer_time": ""}) is False
    assert call_events.answered({"status": "missed"}) is False
    assert call_events.answered({"caller": "x"}) is None


def test_expand_url_longest_name_and_encoding() -> None:
    v = {"CallerIDNum": "+49 711", "CallerIDNam": "A&B", "CallerIDName": "Ä/B", "local": "101"}
    url = "http://crm/p/$local?n=$CallerIDNum&a=$CallerIDNam&b=$CallerIDName&x=$CallerIDNumber&y=$nope"
    assert call_events.expand_url(url, v) == (
        "http://crm/p/101?n=%2B49%20711&a=A%26B&b=%C3%84%2FB&x=$CallerIDNumber&y=$nope"
    )


def _rule(**kw: Any) -> rules.Endpoint:
    base: dict[str, Any] = {
        "endpoint_id": "r1",
        "tenant": "acme",
        "kind": "call_event",
        "url": "http://crm.example.com/hook?src=$CallerIDNum&k=1",
        "extension": "101",
        "event": "dial_in",
        "method": "GET",
    }
    base.update(kw)
    return rules.build(**base)


def _request(ep: rules.Endpoint, body: dict[str, Any] = INBOUND) -> payload.Request:
    return payload.call_event(ep, "900", body, ("101",), {}, int(time.time()), payload.Directory())


def test_get_merges_the_query_and_substitutes_variables() -> None:
    req = _request(_rule(custom_data=(("account", "42"),)))
    assert req.method == "GET" and req.body is None
    parts = urlsplit(req.url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    assert pairs[:2] == [("src", "0711222333"), ("k", "1")]
    params = dict(pairs[2:])
    assert set(params) == ALL_PARAMS | {"account"}
    assert params["EventID"] == "900" and params["CallerIDNam"] == "Jöe Smith"


def test_post_form_and_json() -> None:
    form = _request(_rule(method="POST"))
    assert form.headers["content-type"] == "application/x-www-form-urlencoded"
    assert (
        form.body is not None
        and set(dict(parse_qsl(form.body.decode(), keep_blank_values=True))) == ALL_PARAMS
    )
    js = _request(_rule(method="POST", format="json"))
    assert js.headers["content-type"] == "application/json"
    assert js.body is not None and set(orjson.loads(js.body)) == ALL_PARAMS


def test_custom_data_never_overrides_the_seed_parameters() -> None:
    req = _request(_rule(method="POST", format="json", custom_data=(("CallFlow", "X"), ("a", "b"))))
    assert req.body is not None
    sent = orjson.loads(req.body)
    assert sent["CallFlow"] == "IN" and sent["a"] == "b"


def test_signed_post_verifies_and_id_is_the_event_id() -> None:
    req = _request(_rule(method="POST", secrets=(SECRET,)))
    assert req.headers["webhook-id"] == "900"
    assert req.body is not None
    Webhook(SECRET).verify(req.body, req.headers, json_parse=False)


def test_signed_get_covers_the_query_string() -> None:
    req = _request(_rule(secrets=(SECRET,)))
    query = urlsplit(req.url).query.encode()
    Webhook(SECRET).verify(query, req.headers, json_parse=False)


def test_unsigned_rule_sends_no_signature() -> None:
    assert "webhook-signature" not in _request(_rule()).headers


def test_webhook_payload_is_the_wire_event() -> None:
    ep = rules.build(endpoint_id="w", tenant="acme", kind="webhook", url="http://x/",
                     secrets=(SECRET,))  # fmt: skip
    wire = orjson.dumps(INBOUND)
    req = payload.webhook(ep, "ev-1", wire, int(time.time()))
    assert req.body is wire and req.headers["webhook-id"] == "ev-1"
    assert Webhook(SECRET).verify(wire, req.headers) == INBOUND
    assert signing.PREFIX in SECRET
