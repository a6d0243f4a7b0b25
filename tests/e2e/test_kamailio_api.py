"""POST /api/v1/tenants/{t}/kamailio over real HTTP: authentication, bad input, skips."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tests.support.hub import Hub

DOM = "acme.example.com"


def post(hub: Hub, body: bytes, key: str, tenant: str = "acme") -> tuple[int, dict]:  # type: ignore[type-arg]
    req = urllib.request.Request(
        f"{hub.base}/api/v1/tenants/{tenant}/kamailio", data=body, method="POST"
    )
    req.add_header("Authorization", f"Bearer {key}")
    # what Kamailio's http_client sends by default
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def tenant_key(hub: Hub, tenant: str = "acme") -> str:
    status, body = hub.api("POST", f"/api/v1/tenants/{tenant}/api-keys", {"name": "kamailio"})
    assert status == 201, body
    return str(body["key"])


def test_reports_need_the_tenants_key(hub: Hub) -> None:
    one = json.dumps([{"ev": "invite", "ci": "x@h", "fu": "101", "tu": "102", "dom": DOM}])
    assert post(hub, one.encode(), "nope")[0] == 401
    assert post(hub, one.encode(), tenant_key(hub, "globex"))[0] == 403
    assert post(hub, one.encode(), tenant_key(hub), tenant="nobody")[0] in (403, 404)
    assert hub.all_events() == []


def test_bad_bodies_and_unusable_reports(hub: Hub) -> None:
    key = tenant_key(hub)
    status, body = post(hub, b"[{not json", key)
    assert status == 400 and "not JSON" in body["error"]["message"]
    status, body = post(hub, b'"a string"', key)
    assert status == 400
    status, body = post(hub, json.dumps([{}] * 1001).encode(), key)
    assert status == 400
    reports = [
        {"ev": "invite", "t": "1700000000.1", "ci": "c1@h", "fu": "101", "tu": "102", "dom": DOM},
        {"ev": "invite", "ci": "c2@h", "fu": "201", "tu": "202", "dom": "globex.example.com"},
        {"ev": "bogus", "dom": DOM},
        "not an object",
    ]
    status, body = post(hub, json.dumps(reports).encode(), key)
    assert status == 200, body
    assert body["accepted"] == 1
    assert [s["report"] for s in body["skipped"]] == [1, 2, 3]
    assert "not tenant 'acme'" in body["skipped"][0]["reason"]
    events = hub.all_events()
    assert [e["event_type"] for e in events] == ["call_start"]
    assert events[0]["source"] == "kamailio" and events[0]["call_id"] == "c1@h"
    assert hub.alive()


def batch(*evs: tuple[str, str, dict[str, object]]) -> bytes:
    """Reports as Kamailio sends them: each with its own unique id."""
    base = {"ci": "r1@h", "fu": "101", "tu": "102", "dom": DOM}
    t = 1700000000.0
    out = [
        {"id": rid, "ev": ev, "t": f"{t + i:.6f}", **base, **more}
        for i, (rid, ev, more) in enumerate(evs)
    ]
    return json.dumps(out).encode()


CONTACT = {"addr": "sip:102@127.0.0.1:5070", "expires": 1700003600, "ua": "Yealink"}


def test_a_batch_sent_again_is_recognised_by_its_report_ids_even_after_a_restart(
    hub: Hub,
) -> None:
    key = tenant_key(hub)
    sent = batch(
        ("k1.100.1", "register", {"tu": "102", "src": "127.0.0.1:5070", "after": [CONTACT]}),
        ("k1.100.2", "invite", {}),
        ("k1.100.3", "ringing", {"code": 180}),
        ("k1.100.4", "answer", {}),
    )
    status, first = post(hub, sent, key)
    assert status == 200 and first["accepted"] == 4 and first.get("repeated", 0) == 0, first
    before = hub.all_events()
    assert [e["event_type"] for e in before].count("extension_register") == 1
    assert {e.get("report_id") for e in before} == {"k1.100.1", "k1.100.2", "k1.100.3", "k1.100.4"}

    # The hub's 2xx was lost: Kamailio sends the same batch again.
    status, again = post(hub, sent, key)
    assert status == 200 and again["accepted"] == 0 and again["repeated"] == 4, again
    assert hub.all_events() == before

    hub.stop()
    hub.start()
    status, again = post(hub, sent, key)
    assert status == 200 and again["repeated"] == 4, again
    assert hub.all_events() == before

    # A new report alongside repeated ones is used; a report without an id is never dropped.
    more = batch(
        ("k1.100.4", "answer", {}), ("k1.100.5", "register", {"tu": "102", "after": [CONTACT]})
    )
    status, body = post(hub, more, key)
    assert status == 200 and body["accepted"] == 1 and body["repeated"] == 1, body
    no_id = json.loads(batch(("", "register", {"tu": "102", "after": [CONTACT]})))
    del no_id[0]["id"]
    for _ in range(2):
        assert post(hub, json.dumps(no_id).encode(), key)[1]["accepted"] == 1
    registers = [e for e in hub.all_events() if e["event_type"] == "extension_register"]
    assert len(registers) == 4
