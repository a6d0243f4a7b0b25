"""`PATCH` with `null` on Call Events rules and webhooks: clear where a field may be empty,
422 where it may not; never a stored null (which once made every later listing of the
tenant's rules answer 500, also after a restart, and silently stopped the rule)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone
from tests.support.sink import Sink

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
RULES = "/api/v1/tenants/acme/call-events"
HOOKS = "/api/v1/tenants/acme/webhooks"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, Sink]]:
    with Sink() as sink:
        hub = Hub(
            tmp_path_factory.mktemp("null"), server_config="allow_private_targets = true"
        ).start()
        try:
            yield hub, sink
        finally:
            hub.stop()


def _rule(hub: Hub, sink: Sink, path: str) -> dict[str, Any]:
    body = {
        "extension": "101",
        "event": "dial_in",
        "method": "GET",
        "url": sink.url(path),
        "notes": "screen pop",
        "secret": SECRET,
        "custom_data": {"crm": "acme"},
    }
    status, rule = hub.api("POST", RULES, body)
    assert status == 201, rule
    assert isinstance(rule, dict)
    return rule


@pytest.mark.parametrize("field", ["method", "format", "enabled", "event", "url"])
def test_null_where_a_value_is_required_is_422(env: tuple[Hub, Sink], field: str) -> None:
    hub, sink = env
    rule = _rule(hub, sink, f"/req/{field}")
    status, err = hub.api("PATCH", f"{RULES}/{rule['id']}", {field: None})
    assert status == 422, err
    assert err["error"]["field"] == field and "null" in err["error"]["message"]
    status, after = hub.api("GET", f"{RULES}/{rule['id']}")
    assert status == 200 and after == rule  # nothing changed


def test_null_clears_what_may_be_empty_and_the_rule_keeps_sending(
    env: tuple[Hub, Sink],
) -> None:
    hub, sink = env
    rule = _rule(hub, sink, "/cleared")
    for field in ("notes", "custom_data", "secret"):
        status, after = hub.api("PATCH", f"{RULES}/{rule['id']}", {field: None})
        assert status == 200, (field, after)
    assert after["notes"] == "" and after["custom_data"] == {} and after["secrets"] == []
    status, listed = hub.api("GET", RULES)
    assert status == 200, listed
    hub.stop()
    hub.start()
    status, listed = hub.api("GET", RULES)
    assert status == 200, listed
    (mine,) = [r for r in listed["rules"] if r["id"] == rule["id"]]
    assert mine["notes"] == "" and mine["method"] == "GET" and mine["enabled"] is True
    Phone(hub.port, "gs-7f3a9c", "101").send("Incoming Call", remote="0711222", call_id="nl")
    (got,) = sink.wait_for(1, "/cleared")
    assert "webhook-signature" not in got.headers  # the secret was cleared
    assert got.query_params["CallerIDNum"] == "0711222"


def test_webhook_patch_null_follows_the_same_rule(env: tuple[Hub, Sink]) -> None:
    hub, sink = env
    status, hook = hub.api("POST", HOOKS, {"url": sink.url("/wh"), "description": "crm"})
    assert status == 201, hook
    for field in ("url", "enabled"):
        status, err = hub.api("PATCH", f"{HOOKS}/{hook['id']}", {field: None})
        assert status == 422 and err["error"]["field"] == field, err
    status, after = hub.api(
        "PATCH", f"{HOOKS}/{hook['id']}", {"description": None, "topics": None, "schedule": None}
    )
    assert status == 200, after
    assert after["description"] == "" and after["topics"] == [] and after["schedule"] is None
    assert after["url"] == hook["url"] and after["enabled"] is True
    assert hub.api("GET", HOOKS)[0] == 200
