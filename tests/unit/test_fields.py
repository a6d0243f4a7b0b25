"""One rule, one place: the config file, the admin API and delivery accept the same values.

Each table below is judged by every door; they must agree, value by value. A copied rule
once let a config webhook with a 100-byte secret load and go out unsigned.
"""

from __future__ import annotations

import base64
import sqlite3
from typing import Any, get_args

import orjson
import pytest
from pydantic import ValidationError

from callhook import config, fields, phone_urls
from callhook.api import call_events as call_events_api
from callhook.api import phone_urls as phone_urls_api
from callhook.api import webhooks as webhooks_api
from callhook.deliver import call_events, endpoints, rules, signing, targets
from callhook.store.sql import endpoints as rows
from callhook.store.sqlite import schema

URL = "https://crm.example.com/hook"


def _secret(n: int) -> str:
    return "whsec_" + base64.b64encode(bytes(range(n % 256)) * (n // 256) + bytes(n % 256)).decode()


def _config_accepts(table: str, entry: dict[str, Any]) -> bool:
    try:
        config.parse({"tenant": [{"name": "acme", table: [entry]}]}, env={})
    except config.ConfigError:
        return False
    return True


def _api_accepts(model: type[Any], entry: dict[str, Any]) -> bool:
    try:
        model.model_validate(entry)
    except ValidationError:
        return False
    return True


def _signing_accepts(secret: str) -> bool:
    try:
        signing.secret_key(secret)
    except signing.BadSecret:
        return False
    return True


SECRETS = [
    (_secret(24), True),
    (_secret(32), True),
    (_secret(64), True),
    (_secret(100), False),  # loaded from the file, then sent unsigned
    (_secret(16), False),
    (_secret(23), False),
    (_secret(65), False),
    ("whsec_" + "!" * 40, False),
    (_secret(32).removeprefix("whsec_"), False),
]


@pytest.mark.parametrize(("secret", "valid"), SECRETS)
def test_one_secret_rule(secret: str, valid: bool) -> None:
    hook = {"url": URL, "secret": secret}
    rule = {"extension": "101", "event": "dial_in", "url": URL, "secret": secret}
    judged = {
        "config webhook": _config_accepts("webhook", hook),
        "config webhook secrets": _config_accepts("webhook", {"url": URL, "secrets": [secret]}),
        "config rule": _config_accepts("call_event", rule),
        "api webhook": _api_accepts(webhooks_api.WebhookCreate, hook),
        "api rule": _api_accepts(call_events_api.RuleCreate, rule),
        "signing": _signing_accepts(secret),
    }
    assert judged == dict.fromkeys(judged, valid)


@pytest.mark.parametrize(
    ("event", "valid"),
    [
        ("dial_in", True),
        ("hangup", True),
        ("answer_outgoing", True),
        ("call_cdr", True),
        ("target_ringing", True),
        ("nope", False),
        ("", False),
        ("cdr_events", False),
    ],
)
def test_one_call_event_name_rule(event: str, valid: bool) -> None:
    rule = {"extension": "101", "event": event, "url": URL}
    assert _config_accepts("call_event", rule) is valid
    assert _api_accepts(call_events_api.RuleCreate, rule) is valid


def test_the_rule_events_are_the_ones_delivery_maps() -> None:
    assert set(call_events.RULE_EVENTS) == set(fields.CALL_EVENT_NAMES)


@pytest.mark.parametrize(
    ("filters", "valid"),
    [
        ({"topics": ["cdr_events"], "keys": ["call_cdr"]}, True),
        ({"topics": ["queue_events", "trunk_events"]}, True),
        ({"topics": ["cdr"]}, False),
        ({"keys": ["call_started"]}, False),
        ({"keys": ["cdr_events"]}, False),
    ],
)
def test_one_topic_and_key_rule(filters: dict[str, Any], valid: bool) -> None:
    hook = {"url": URL, **filters}
    assert _config_accepts("webhook", hook) is valid
    assert _api_accepts(webhooks_api.WebhookCreate, hook) is valid


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://crm.example.com/hook", True),
        ("http://crm.example.com:8080/x?from=$CallerIDNum", True),
        ("https://[2001:db8::1]/x", True),
        ("https://user:pw@crm.example.com/hook", False),  # refused only at send time before
        ("ftp://crm.example.com/x", False),
        ("http://$host/x", False),
        ("http:///x", False),
        ("http://crm.example.com:99999/x", False),
        ("https://crm.example.com/" + "x" * fields.URL_MAX, False),
    ],
)
def test_one_target_url_rule(url: str, valid: bool) -> None:
    """The file, the API (with its SSRF check) and the sender judge a URL alike."""
    try:
        targets.check_literal(url, allow_private=True)
        sender = True
    except targets.TargetRefused:
        sender = False
    assert _config_accepts("webhook", {"url": url}) is valid
    rule = {"extension": "101", "event": "hangup", "url": url}
    assert _config_accepts("call_event", rule) is valid
    assert sender is valid


def test_one_vendor_list() -> None:
    assert phone_urls.URL_VENDORS == fields.PHONE_URL_VENDORS
    assert get_args(phone_urls_api.Vendor) == fields.PHONE_URL_VENDORS


def test_a_bad_secret_is_never_built_into_an_endpoint() -> None:
    """It once was, with no signing key: the requests went out without a signature."""
    with pytest.raises(signing.BadSecret):
        rules.build(endpoint_id="1", tenant="acme", kind="webhook", url=URL,
                    secrets=(_secret(100),))  # fmt: skip


def test_a_stored_bad_secret_holds_the_endpoint_instead_of_sending_unsigned() -> None:
    """A database written by an older version may hold one: it loads, held, not signed
    with nothing; the config file's valid secret then releases it."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.upgrade(conn)
    conn.execute("INSERT INTO tenants (name, tenant_id, created_at) VALUES ('acme', '1', 0)")
    settings = config.parse(
        {"tenant": [{"name": "acme", "webhook": [{"url": URL, "secret": _secret(32)}]}]}, env={}
    )
    rows.sync_config(conn, endpoints.config_plan(settings, 1.0))
    bad = orjson.dumps([_secret(100)]).decode()
    conn.execute("UPDATE endpoints SET secrets=?", (bad,))
    [ep] = rows.load_all(conn)
    assert ep.disabled_reason == rules.BAD_SECRET and not ep.active
    assert rows.sync_config(
        conn, endpoints.config_plan(settings, 2.0)
    )  # the file's secret replaces it
    [ep] = rows.load_all(conn)
    assert ep.active and len(ep.signing_keys) == 1


def test_a_bad_config_secret_names_the_endpoint() -> None:
    data = {
        "tenant": [
            {"name": "acme", "webhook": [{"url": URL, "secret": _secret(32)}]},
            {
                "name": "globex",
                "webhook": [
                    {"url": URL, "secret": _secret(32)},
                    {"url": "https://other.example/h", "secret": _secret(100)},
                ],
            },
        ]
    }
    with pytest.raises(config.ConfigError) as exc:
        config.parse(data, env={})
    msg = str(exc.value)
    assert "tenant 'globex'" in msg and "webhook to https://other.example/h" in msg, msg
    assert "100 bytes" in msg and _secret(100)[6:20] not in msg
