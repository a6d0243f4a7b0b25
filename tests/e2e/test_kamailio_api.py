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
