"""Tenant API keys over the REST API of a real hub: shown once, scoped, revoked at once."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.support.hub import Hub

KEYS = "/api/v1/tenants/acme/api-keys"


def test_key_lifecycle(shared_hub: Hub) -> None:
    h = shared_hub
    status, created = h.api("POST", KEYS, {"name": "crm"})
    assert status == 201, created
    key = created["key"]
    assert key.startswith("chk_") and created["tenant"] == "acme" and created["name"] == "crm"
    listed = h.api("GET", KEYS)[1]["api_keys"]
    mine = [k for k in listed if k["key_id"] == created["key_id"]]
    assert mine and "key" not in mine[0] and mine[0]["revoked_at"] is None
    assert key not in str(listed)

    # It works for its tenant, and for nothing else.
    assert h.api("GET", "/api/v1/tenants/acme/events", key=key)[0] == 200
    assert h.api("GET", "/api/v1/tenants/globex/events", key=key)[0] == 403
    assert h.api("GET", "/api/v1/tenants/globex/api-keys", key=key)[0] == 403
    assert h.api("POST", "/api/v1/tenants/globex/api-keys", {}, key=key)[0] == 403

    # Revocation is immediate, although the key was just used (and so cached).
    assert h.api("DELETE", f"{KEYS}/{created['key_id']}") == (204, None)
    status, err = h.api("GET", "/api/v1/tenants/acme/events", key=key)
    assert status == 401 and err["error"]["code"] == "unauthorized"
    assert created["key_id"] not in {k["key_id"] for k in h.api("GET", KEYS)[1]["api_keys"]}
    revoked = h.api("GET", f"{KEYS}?include_revoked=true")[1]["api_keys"]
    assert next(k["revoked_at"] for k in revoked if k["key_id"] == created["key_id"]) > 0
    assert h.api("DELETE", f"{KEYS}/nosuch")[0] == 404


def test_tenant_keys_manage_only_their_own_keys(shared_hub: Hub) -> None:
    h = shared_hub
    acme = h.api("POST", KEYS, None)[1]
    assert acme["name"] == ""
    globex = h.api("POST", "/api/v1/tenants/globex/api-keys", {"name": "g"})[1]
    # A tenant key makes more keys for its tenant...
    status, second = h.api("POST", KEYS, {"name": "second"}, key=acme["key"])
    assert status == 201 and second["tenant"] == "acme"
    # ...but cannot see or revoke another tenant's, whatever path it tries.
    path = f"/api/v1/tenants/globex/api-keys/{globex['key_id']}"
    assert h.api("DELETE", path, key=acme["key"])[0] == 403
    assert h.api("DELETE", f"{KEYS}/{globex['key_id']}", key=acme["key"])[0] == 404
    assert h.api("DELETE", f"{KEYS}/{globex['key_id']}")[0] == 404  # admin: wrong tenant
    assert h.api("GET", "/api/v1/tenants/globex/events", key=globex["key"])[0] == 200
    # A key may revoke itself.
    assert h.api("DELETE", f"{KEYS}/{second['key_id']}", key=second["key"])[0] == 204
    assert h.api("GET", KEYS, key=second["key"])[0] == 401
    assert h.api("POST", "/api/v1/tenants/nosuch/api-keys", {})[0] == 404
    assert h.api("POST", KEYS, {"name": "x" * 200})[1]["error"]["field"] == "name"


def test_failed_authentication_is_rate_limited(hub: Hub) -> None:
    statuses = [hub.api("GET", KEYS, key=f"chk_guess{i}")[0] for i in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[10:] == [429, 429]
    status, err = hub.api("GET", KEYS)  # the address is blocked, even with a good key
    assert status == 429 and err["error"]["code"] == "rate-limited"
    req = urllib.request.Request(hub.base + KEYS, headers={"Authorization": "Bearer chk_x"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10)
    refused.value.close()
    assert refused.value.code == 429
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 60
