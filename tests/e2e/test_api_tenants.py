"""Tenants over the REST API of a real hub: lifecycle, validation, pagination, scope."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from tests.support.hub import ADMIN_KEY, Hub


def phone(hub: Hub, token: str, event: str = "off_hook", **pairs: str) -> int:
    """One Action URL request as a Yealink-style phone sends it; returns the status."""
    query = "&".join(
        f"{k}={v}" for k, v in {"mac": "000B82AABBCC", "local": "101", **pairs}.items()
    )
    try:
        with urllib.request.urlopen(f"{hub.base}/ingest/{token}/{event}?{query}", timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def raw_post(hub: Hub, path: str, data: bytes, key: str = ADMIN_KEY) -> tuple[int, Any]:
    req = urllib.request.Request(hub.base + path, data=data, method="POST")
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def tenant_key(hub: Hub, tenant: str) -> str:
    status, body = hub.api("POST", f"/api/v1/tenants/{tenant}/api-keys", {"name": "test"})
    assert status == 201, body
    return str(body["key"])


def test_tenant_lifecycle(shared_hub: Hub) -> None:
    h = shared_hub
    status, t = h.api(
        "POST",
        "/api/v1/tenants",
        {"name": "life", "password": "pw-life", "open_ingest_networks": ["10.1.0.0/16"]},
    )
    assert status == 201, t
    token = t["ingest_token"]
    assert token and t["source"] == "api" and t["has_password"] is True
    assert t["domain"] == "life.local" and t["open_ingest_networks"] == ["10.1.0.0/16"]
    assert "password" not in t and "password_hash" not in t
    assert h.api("GET", "/api/v1/tenants/life") == (200, t)

    status, again = h.api("POST", "/api/v1/tenants", {"name": "life"})
    assert status == 409 and again["error"]["field"] == "name", again

    status, t2 = h.api("PATCH", "/api/v1/tenants/life", {"domain": "life.example.com"})
    assert status == 200 and t2["domain"] == "life.example.com" and t2["ingest_token"] == token

    # The new tenant takes phone events at once, and only under its token.
    assert phone(h, token) == 200
    assert [e["event_type"] for e in h.events("life")] == ["off_hook"]

    status, rotated = h.api("POST", "/api/v1/tenants/life/ingest-token/rotate")
    assert status == 200 and rotated["ingest_token"] != token
    assert phone(h, token) == 404
    assert phone(h, rotated["ingest_token"]) == 200

    assert h.api("DELETE", "/api/v1/tenants/life") == (204, None)
    assert h.api("GET", "/api/v1/tenants/life")[0] == 404
    assert h.api("DELETE", "/api/v1/tenants/life")[0] == 404
    assert phone(h, rotated["ingest_token"]) == 404
    names = [t["name"] for t in h.api("GET", "/api/v1/tenants")[1]["tenants"]]
    assert "life" not in names and {"acme", "globex"} <= set(names)


def test_deleting_a_tenant_removes_its_data_and_frees_the_name(shared_hub: Hub) -> None:
    h = shared_hub
    status, t = h.api("POST", "/api/v1/tenants", {"name": "gone"})
    assert status == 201
    assert h.api("POST", "/api/v1/tenants/gone/extensions", {"number": "101"})[0] == 201
    for event in ("off_hook", "on_hook", "dnd_on"):
        assert phone(h, t["ingest_token"], event) == 200
    assert phone(h, t["ingest_token"], "incoming_call", remote="0711", call_id="open") == 200
    assert len(h.events("gone")) == 6  # and a call left open
    assert h.api("DELETE", "/api/v1/tenants/gone")[0] == 204
    deadline = time.monotonic() + 10
    while True:
        left = h.sql("SELECT COUNT(*) FROM events WHERE tenant='gone'")[0][0]
        pending = h.sql("SELECT COUNT(*) FROM tenant_purges")[0][0]
        if left == 0 and pending == 0:
            break
        assert time.monotonic() < deadline, (left, pending)
        time.sleep(0.05)
    status, t2 = h.api("POST", "/api/v1/tenants", {"name": "gone"})
    assert status == 201, t2
    assert h.events("gone") == []  # nothing of the old tenant shows through
    # Nor its presence or open call, which lived in memory (same process, no restart).
    assert h.api("POST", "/api/v1/tenants/gone/extensions", {"number": "101"})[0] == 201
    state = h.api("GET", "/api/v1/tenants/gone/extensions/101/state")[1]
    assert not state["dnd"] and not state["sessions"], state
    assert h.api("GET", "/api/v1/tenants/gone/calls?active=true")[1]["calls"] == []


def test_validation_names_the_field(shared_hub: Hub) -> None:
    h = shared_hub
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "bad name"}, "name"),
        ({"name": "x" * 65}, "name"),
        ({}, "name"),
        ({"name": "v1", "open_ingest_networks": ["10.0.0.0/33"]}, "open_ingest_networks.0"),
        ({"name": "v1", "ingest_token": "a&b=c"}, "ingest_token"),
        ({"name": "v1", "domain": "-bad"}, "domain"),
        ({"name": "v1", "colour": "red"}, "colour"),
        ({"name": "v1", "password": ""}, "password"),
    ]
    for body, field in cases:
        status, err = h.api("POST", "/api/v1/tenants", body)
        assert status == 422, (body, err)
        assert err["error"]["code"] == "invalid" and err["error"]["field"] == field, (body, err)
    # A lone surrogate is valid JSON but cannot be stored or hashed: 422, never 500.
    status, err = raw_post(h, "/api/v1/tenants", b'{"name": "v1", "password": "\\ud800"}')
    assert status == 422 and err["error"]["field"] == "password", err
    status, err = raw_post(h, "/api/v1/tenants", b"\xff\xfe not json")
    assert status in (400, 422) and "error" in err, err
    status, err = h.api("POST", "/api/v1/tenants", {"name": "v2", "ingest_token": "gs-7f3a9c"})
    assert status == 409 and err["error"]["field"] == "ingest_token", err
    assert h.api("GET", "/api/v1/tenants/v1")[0] == 404


def test_list_is_paginated_and_filtered(shared_hub: Hub) -> None:
    h = shared_hub
    for name in ("page-a", "page-b", "page-c"):
        assert h.api("POST", "/api/v1/tenants", {"name": name})[0] == 201
    status, first = h.api("GET", "/api/v1/tenants?search=page-&limit=2")
    assert status == 200
    assert [t["name"] for t in first["tenants"]] == ["page-a", "page-b"]
    assert first["next_cursor"] == "page-b"
    status, second = h.api(
        "GET", f"/api/v1/tenants?search=page-&limit=2&cursor={first['next_cursor']}"
    )
    assert [t["name"] for t in second["tenants"]] == ["page-c"] and second["next_cursor"] is None
    assert h.api("GET", "/api/v1/tenants?limit=0")[0] == 422
    assert h.api("GET", "/api/v1/tenants?search=%25")[1]["tenants"] == []  # LIKE is escaped


def test_tenant_keys_stay_in_their_tenant(shared_hub: Hub) -> None:
    h = shared_hub
    acme = tenant_key(h, "acme")
    forbidden = [
        ("GET", "/api/v1/tenants", None),
        ("POST", "/api/v1/tenants", {"name": "sneaky"}),
        ("GET", "/api/v1/tenants/globex", None),
        ("PATCH", "/api/v1/tenants/acme", {"open_ingest_networks": ["0.0.0.0/0"]}),
        ("PATCH", "/api/v1/tenants/globex", {"domain": "x.example.com"}),
        ("DELETE", "/api/v1/tenants/acme", None),
        ("DELETE", "/api/v1/tenants/globex", None),
        ("POST", "/api/v1/tenants/globex/ingest-token/rotate", None),
        ("GET", "/api/v1/tenants/nosuch", None),
    ]
    for method, path, body in forbidden:
        status, err = h.api(method, path, body, key=acme)
        assert status == 403 and err["error"]["code"] == "forbidden", (method, path, err)
    assert h.api("GET", "/api/v1/tenants/sneaky")[0] == 404
    status, own = h.api("GET", "/api/v1/tenants/acme", key=acme)
    assert (
        status == 200 and own["name"] == "acme" and own["open_ingest_networks"] == ["127.0.0.0/8"]
    )
    assert h.api("GET", "/api/v1/tenants/globex")[1]["ingest_token"] == "gx-1234"

    # A tenant may rotate its own token (on a tenant of its own, so acme keeps its token).
    assert h.api("POST", "/api/v1/tenants", {"name": "rot"})[0] == 201
    rot = tenant_key(h, "rot")
    status, body = h.api("POST", "/api/v1/tenants/rot/ingest-token/rotate", key=rot)
    assert status == 200 and body["ingest_token"].startswith("tk-")

    assert h.api("GET", "/api/v1/tenants", key="")[0] == 401
    assert h.api("GET", "/api/v1/tenants", key="chk_wrong")[0] == 401


def test_an_interrupted_removal_resumes_at_start(hub: Hub) -> None:
    status, t = hub.api("POST", "/api/v1/tenants", {"name": "halfway"})
    assert status == 201
    for event in ("off_hook", "on_hook"):
        assert phone(hub, t["ingest_token"], event) == 200
    hub.stop()
    # As if the hub died right after DELETE committed: the row is gone, the data is not.
    hub.sql("DELETE FROM tenants WHERE name='halfway'")
    hub.sql("INSERT INTO tenant_purges VALUES ('halfway', 0)")
    hub.start()
    deadline = time.monotonic() + 10
    while hub.sql("SELECT COUNT(*) FROM tenant_purges")[0][0]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hub.sql("SELECT COUNT(*) FROM events WHERE tenant='halfway'")[0][0] == 0
    assert hub.api("POST", "/api/v1/tenants", {"name": "halfway"})[0] == 201
