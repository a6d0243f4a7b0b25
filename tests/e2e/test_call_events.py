"""VoipNow-style Call Events through a real hub to a real recording sink (VoipNow's Call Events).

Phones report calls with Action URLs; the hub correlates them and sends each extension's
rules' requests with VoipNow's default parameters, spelled exactly as VoipNow does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Recorded, Sink

TOKEN = "gs-7f3a9c"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
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


def rules(sink: Sink) -> str:
    def rule(ext: str, event: str, path: str, **extra: str) -> str:
        lines = [
            "[[tenant.call_event]]",
            f'extension = "{ext}"',
            f'event = "{event}"',
            f'url = "{sink.url(path)}"',
        ]
        lines += [f"{k} = {v}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    return "".join(
        [
            rule("101", "dial_in", "/ce/dial_in?from=$CallerIDNum&who=$display_remote&me=$local",
                 method='"GET"', notes='"screen pop"'),
            rule("101", "answer_incoming", "/ce/answer_in", method='"POST"'),
            rule("101", "hangup", "/ce/hangup", method='"POST"', format='"json"',
                 secret=f'"{SECRET}"', custom_data='{ crm = "acme-crm", account = "42" }'),
            rule("101", "dial_in", "/ce/disabled", enabled="false"),
            rule("102", "dial_out", "/ce/dial_out", method='"GET"'),
            rule("102", "answer_outgoing", "/ce/answer_out", method='"POST"'),
            rule("103", "hangup", "/ce/hangup103", method='"GET"'),
            # one ring, two phones; and a rule on another event key
            rule("101", "dial_in", "/r/101/dial_in", method='"GET"'),
            rule("101", "answer_incoming", "/r/101/answer_in", method='"GET"'),
            rule("101", "hangup", "/r/101/hangup", method='"GET"'),
            rule("102", "dial_in", "/r/102/dial_in", method='"GET"'),
            rule("102", "answer_incoming", "/r/102/answer_in", method='"GET"'),
            rule("102", "hangup", "/r/102/hangup", method='"GET"'),
            rule("101", "call_hold", "/r/101/hold", method='"GET"'),
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Sink]]:
    with Sink() as sink:
        hub = Hub(
            tmp_path_factory.mktemp("ce"),
            server_config="allow_private_targets = true",
            acme_config=rules(sink),
            extra_config="\n[delivery]\nschedule = [0, 0.2, 0.5]\n",
        ).start()
        try:
            yield hub, sink
        finally:
            hub.stop()


def one(sink: Sink, path: str, call_id: str) -> Recorded:
    """The single request for `call_id` under `path` (waits for it)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = [r for r in sink.requests(path) if params(r).get("CallID") == call_id]
        if got:
            time.sleep(0.05)  # a duplicate would come right behind
            got = [r for r in sink.requests(path) if params(r).get("CallID") == call_id]
            assert len(got) == 1, got
            return got[0]
        time.sleep(0.02)
    raise AssertionError(f"no request under {path} for call {call_id}")


def params(r: Recorded) -> dict[str, Any]:
    if r.method == "GET":
        return r.query_params
    if r.headers.get("content-type", "").startswith("application/json"):
        data: dict[str, Any] = r.json()
        return data
    return r.form


def test_inbound_answered_call_every_seed_parameter(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "101")
    caller = {"remote": "0711222333", "display_remote": "Jöe Smith & Co", "call_id": "in-1"}
    assert phone.send("Incoming Call", **caller).status == 200
    assert phone.send("Establish Call", **caller).status == 200
    assert phone.send("Terminate Call", duration="42", **caller).status == 200

    dial = one(sink, "/ce/dial_in", "in-1")
    assert dial.method == "GET"
    q = dial.query_params
    # $variables of the URL, replaced and percent-encoded, then VoipNow's parameters
    assert dial.query.startswith("from=0711222333&who=J%C3%B6e%20Smith%20%26%20Co&me=101&")
    assert set(q) == ALL_PARAMS | {"from", "who", "me"}
    assert {k: q[k] for k in ALL_PARAMS - {"EventID"}} == {
        "CallID": "in-1",
        "CallerIDNum": "0711222333",
        "CallerIDNam": "Jöe Smith & Co",
        "CallerIDName": "Jöe Smith & Co",
        "CalledDID": "",
        "CalledExtension": "101",
        "CallStatus": "CALLING",
        "CallFlow": "IN",
        "CallerExtension": "",
        "CalledNumber": "101",
        "EventType": "dial_in",
    }
    assert q["EventID"].isdigit()

    answer = one(sink, "/ce/answer_in", "in-1")
    assert answer.method == "POST"
    assert answer.headers["content-type"] == "application/x-www-form-urlencoded"
    assert set(answer.form) == ALL_PARAMS
    assert answer.form["CallStatus"] == "ANSWER" and answer.form["EventType"] == "answer_incoming"

    hangup = one(sink, "/ce/hangup", "in-1")
    body = Webhook(SECRET).verify(hangup.body, hangup.headers)  # signed like JSON webhooks
    assert set(body) == ALL_PARAMS | {"crm", "account"}
    assert body["CallStatus"] == "ANSWER" and body["CallFlow"] == "IN"
    assert body["crm"] == "acme-crm" and body["account"] == "42"
    assert hangup.headers["webhook-id"] == body["EventID"]
    assert len({q["EventID"], answer.form["EventID"], body["EventID"]}) == 3  # one per request

    # The disabled rule was given no delivery for that same event, and sent nothing.
    rule_id = rule_of(hub, "101", "/ce/disabled")
    status, page = hub.api("GET", f"/api/v1/tenants/acme/call-events/{rule_id}/deliveries")
    assert status == 200 and page["deliveries"] == []
    assert sink.count("/ce/disabled") == 0


def test_outbound_call_from_the_callers_point_of_view(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "102", mac="000B82445566")
    call = {"remote": "0799123456", "call_id": "out-1"}
    phone.send("Outgoing Call", **call)
    phone.send("Establish Call", **call)
    dial = one(sink, "/ce/dial_out", "out-1").query_params
    assert dial["CallFlow"] == "OUT" and dial["CallStatus"] == "CALLING"
    assert dial["CallerExtension"] == "102" and dial["CallerIDNum"] == "102"
    assert dial["CalledNumber"] == "0799123456" and dial["CalledExtension"] == ""
    answered = one(sink, "/ce/answer_out", "out-1").form
    assert answered["CallStatus"] == "ANSWER" and answered["EventType"] == "answer_outgoing"


def test_unanswered_call_hangs_up_unknown(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "103", mac="000B82778899")
    call = {"remote": "0711000111", "call_id": "miss-1"}
    phone.send("Incoming Call", **call)
    phone.send("Terminate Call", **call)
    hangup = one(sink, "/ce/hangup103", "miss-1").query_params
    assert hangup["CallStatus"] == "UNKNOWN" and hangup["EventType"] == "hangup"
    assert hangup["CallFlow"] == "IN" and set(hangup) == ALL_PARAMS


def rule_of(hub: Hub, ext: str, path: str) -> str:
    status, body = hub.api("GET", f"/api/v1/tenants/acme/call-events?extension={ext}")
    assert status == 200
    return next(r["id"] for r in body["rules"] if unquote(r["url"]).split("?")[0].endswith(path))


def test_rules_over_the_api_and_the_delivery_log(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    base = "/api/v1/tenants/acme/call-events"
    status, err = hub.api(
        "POST", base, {"extension": "999", "event": "dial_in", "url": sink.url("/x")}
    )
    assert status == 422 and err["error"]["field"] == "extension"
    status, err = hub.api(
        "POST", base, {"extension": "102", "event": "ringing", "url": sink.url("/x")}
    )
    assert status == 422 and err["error"]["field"] == "event"
    new = {"extension": "102", "event": "dial_in", "method": "GET", "notes": "from the API",
           "url": sink.url("/ce/api?caller=$CallerIDNum")}  # fmt: skip
    status, rule = hub.api("POST", base, new)
    assert status == 201, rule
    assert rule["status"] == "enabled" and rule["notes"] == "from the API" and rule["id"]

    # 101 calls 102: the new rule fires for 102 (callee, internal call).
    Phone(hub.port, TOKEN, "101").send("Outgoing Call", remote="102", call_id="api-1")
    got = one(sink, "/ce/api", "api-1").query_params
    assert got["caller"] == "101" and got["CallerExtension"] == "101" and got["CallFlow"] == "IN"

    status, page = hub.api("GET", f"{base}/{rule['id']}/deliveries?status=succeeded")
    assert status == 200 and len(page["deliveries"]) == 1
    d = page["deliveries"][0]
    assert d["id"] == got["EventID"] and d["event_type"] == "call_start" and d["attempts"] == 1
    status, detail = hub.api("GET", f"/api/v1/tenants/acme/deliveries/{d['id']}")
    attempt = detail["attempt_log"][0]
    assert attempt["status_code"] == 200 and attempt["latency_ms"] >= 0 and attempt["response"]

    # Redelivery: the same EventID again.
    status, _ = hub.api("POST", f"/api/v1/tenants/acme/deliveries/{d['id']}/redeliver")
    assert status == 202
    sink.wait_for(2, "/ce/api")
    assert [r.query_params["EventID"] for r in sink.requests("/ce/api")] == [d["id"]] * 2

    # Disabled: nothing more is sent for the next call.
    status, off = hub.api("POST", f"{base}/{rule['id']}/disable")
    assert status == 200 and off["status"] == "off"
    Phone(hub.port, TOKEN, "101").send("Terminate Call", remote="102", call_id="api-1")
    Phone(hub.port, TOKEN, "101").send("Outgoing Call", remote="102", call_id="api-2")
    assert any(e.get("call_id") == "api-2" for e in hub.all_events(key="call_start"))
    status, page = hub.api("GET", f"{base}/{rule['id']}/deliveries")
    ids = [x["id"] for x in page["deliveries"]]
    assert ids == [d["id"]]
    status, on = hub.api("PATCH", f"{base}/{rule['id']}", {"enabled": True, "notes": "again"})
    assert status == 200 and on["status"] == "enabled" and on["notes"] == "again"
    status, _ = hub.api("DELETE", f"{base}/{rule['id']}")
    assert status == 204
    assert hub.api("GET", f"{base}/{rule['id']}")[0] == 404


def test_config_rules_are_listed_and_guarded(env: tuple[Hub, Sink]) -> None:
    hub, _sink = env
    rule_id = rule_of(hub, "101", "/ce/hangup")
    status, rule = hub.api("GET", f"/api/v1/tenants/acme/call-events/{rule_id}")
    assert status == 200 and rule["source"] == "config" and rule["format"] == "json"
    assert rule["secrets"] == ["whsec_MfKQ..."]  # never the secret itself
    status, err = hub.api("DELETE", f"/api/v1/tenants/acme/call-events/{rule_id}")
    assert status == 409 and err["error"]["code"] == "config-managed"
    assert hub.api("GET", "/api/v1/tenants/acme/call-events", key="nope")[0] == 401


def of_caller(sink: Sink, path: str, caller: str, n: int = 1) -> list[dict[str, str]]:
    """The query parameters of the `n` GET requests under `path` for calls from `caller`."""

    def mine() -> list[dict[str, str]]:
        return [q for r in sink.requests(path) if (q := r.query_params)["CallerIDNum"] == caller]

    deadline = time.monotonic() + 10
    while len(mine()) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # a duplicate would come right behind
    got = mine()
    assert len(got) == n, (path, got)
    return got


def test_one_call_ringing_two_extensions(env: tuple[Hub, Sink]) -> None:
    # Seed 003: Dial-In "occurs when a call is received by an extension", Answer on incoming
    # call when it "is answered"; the phone that only rang ends answered_elsewhere.
    hub, sink = env
    p101 = Phone(hub.port, TOKEN, "101")
    p102 = Phone(hub.port, TOKEN, "102", mac="000B82445566")
    caller = {"remote": "0711888", "display_remote": "Jürgen M"}
    assert p101.send("Incoming Call", call_id="r1", **caller).status == 200
    assert p102.send("Incoming Call", call_id="r2", **caller).status == 200
    assert p102.send("Establish Call", call_id="r2", **caller).status == 200
    assert p101.send("Missed Call", call_id="r1", **caller).status == 200
    assert p102.send("Terminate Call", call_id="r2", **caller).status == 200

    for ext in ("101", "102"):
        (dial,) = of_caller(sink, f"/r/{ext}/dial_in", "0711888")
        assert dial["CallStatus"] == "CALLING" and dial["CallFlow"] == "IN"
        assert dial["CalledExtension"] == ext and dial["CalledNumber"] == ext
        (hangup,) = of_caller(sink, f"/r/{ext}/hangup", "0711888")
        assert hangup["CallStatus"] == "ANSWER" and hangup["CallFlow"] == "IN"
        assert hangup["CalledExtension"] == ext and hangup["CalledNumber"] == ext
        assert dial["CallID"] == hangup["CallID"]  # one call
        for q in (dial, hangup):
            assert q["CallerIDNam"] == q["CallerIDName"] == "Jürgen M"
            assert q["CallerExtension"] == ""
    (answer,) = of_caller(sink, "/r/102/answer_in", "0711888")
    assert answer["CalledExtension"] == "102" and answer["CalledNumber"] == "102"
    assert answer["CallStatus"] == "ANSWER" and answer["CallerIDNam"] == "Jürgen M"
    # 101 rang but never answered: no answer_incoming for it (hangups already went out).
    assert of_caller(sink, "/r/101/answer_in", "0711888", n=0) == []


def test_caller_name_on_every_request_of_the_call(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "101")
    call = {"remote": "0711444555", "display_remote": "Jürgen M", "call_id": "name-1"}
    for what in ("Incoming Call", "Establish Call", "Terminate Call"):
        assert phone.send(what, **call).status == 200
    dial = one(sink, "/ce/dial_in", "name-1").query_params
    answer = one(sink, "/ce/answer_in", "name-1").form
    hangup = one(sink, "/ce/hangup", "name-1").json()
    assert "CallerIDNam=J%C3%BCrgen+M&" in one(sink, "/ce/dial_in", "name-1").query
    for q in (dial, answer, hangup):
        assert q["CallerIDNam"] == q["CallerIDName"] == "Jürgen M", q
        assert q["CallerIDNum"] == "0711444555" and q["CallFlow"] == "IN"
        assert q["CalledExtension"] == "101" and q["CallerExtension"] == ""


def test_any_event_key_carries_the_calls_parameters(env: tuple[Hub, Sink]) -> None:
    # Any canonical key is allowed, and each request carries the default
    # parameters. A call_hold body has no caller or callee; the call still has them.
    hub, sink = env
    phone = Phone(hub.port, TOKEN, "101")
    call = {"remote": "0799555", "call_id": "h1"}
    for what in ("Outgoing Call", "Establish Call", "Hold Call", "Terminate Call"):
        assert phone.send(what, **call).status == 200
    hold = one(sink, "/r/101/hold", "h1").query_params
    hangup = one(sink, "/ce/hangup", "h1").json()
    assert hold["EventType"] == "call_hold"
    assert {k: hold[k] for k in SEED_PARAMS - {"CallStatus"}} == {
        "CallID": "h1",
        "CallerIDNum": "101",
        "CallerIDNam": "Alice",
        "CalledDID": "",
        "CalledExtension": "",
        "CallFlow": "OUT",
        "CallerExtension": "101",
        "CalledNumber": "0799555",
    }
    same = SEED_PARAMS - {"CallStatus"} | {"CallerIDName"}
    assert {k: hold[k] for k in same} == {k: hangup[k] for k in same}


def test_call_parameters_survive_a_restart_mid_call(tmp_path: Path) -> None:
    # The delivery side forgets its memory of the call on restart; the event log has it.
    with Sink() as sink:
        hub = Hub(tmp_path, server_config="allow_private_targets = true",
                  acme_config=rules(sink)).start()  # fmt: skip
        try:
            phone = Phone(hub.port, TOKEN, "101")
            call = {"remote": "0711777", "display_remote": "Jürgen M", "call_id": "rs-1"}
            phone.send("Incoming Call", **call)
            phone.send("Establish Call", **call)
            one(sink, "/ce/answer_in", "rs-1")
            hub.stop()
            hub.start()
            phone.send("Hold Call", **call)
            phone.send("Terminate Call", **call)
            hold = one(sink, "/r/101/hold", "rs-1").query_params
            hangup = one(sink, "/ce/hangup", "rs-1").json()
        finally:
            hub.stop()
    for q in (hold, hangup):
        assert q["CallerIDNam"] == q["CallerIDName"] == "Jürgen M", q
        assert q["CallerIDNum"] == "0711777" and q["CallFlow"] == "IN"
        assert q["CalledExtension"] == q["CalledNumber"] == "101"
