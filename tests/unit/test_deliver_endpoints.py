"""Rules and webhooks declared in the config file: applied idempotently, like the directory."""

from __future__ import annotations

import sqlite3
from typing import Any

from callhook import config
from callhook.deliver import endpoints
from callhook.store.sql import endpoints as rows
from callhook.store.sqlite import schema

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _settings(rules: list[dict[str, Any]], hooks: list[dict[str, Any]]) -> config.Settings:
    return config.parse(
        {"tenant": [{"name": "acme", "call_event": rules, "webhook": hooks}]}, env={}
    )


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    schema.upgrade(conn)
    conn.execute("INSERT INTO tenants (name, tenant_id, created_at) VALUES ('acme', '1', 0)")
    return conn


RULE = {"extension": "101", "event": "dial_in", "url": "http://crm.example.com/?n=$CallerIDNum"}
HOOK = {"url": "https://hooks.example.com/cdr", "secret": SECRET, "topics": ["cdr_events"]}


def test_apply_twice_changes_nothing_and_keeps_ids() -> None:
    conn = _db()
    s = _settings([RULE, {**RULE, "event": "hangup"}], [HOOK])
    assert len(rows.sync_config(conn, endpoints.config_plan(s, 1.0))) == 3
    first = {e.endpoint_id: e for e in rows.load_all(conn)}
    assert rows.sync_config(conn, endpoints.config_plan(s, 2.0)) == []
    assert {e.endpoint_id: e for e in rows.load_all(conn)} == first
    assert all(e.source == "config" for e in first.values())


def test_changed_entry_keeps_its_id_and_removed_entry_goes() -> None:
    conn = _db()
    rows.sync_config(conn, endpoints.config_plan(_settings([RULE], [HOOK]), 1.0))
    (hook_id,) = [e.endpoint_id for e in rows.load_all(conn) if e.kind == "webhook"]
    changes = rows.sync_config(
        conn, endpoints.config_plan(_settings([], [{**HOOK, "enabled": False}]), 2.0)
    )
    assert any(c.startswith("removed call_event") for c in changes)
    assert any(c.startswith(f"changed webhook {hook_id}") for c in changes)
    (hook,) = rows.load_all(conn)
    assert hook.endpoint_id == hook_id and hook.enabled is False and hook.updated_at == 2.0


def test_api_entries_are_left_alone() -> None:
    conn = _db()
    rows.sync_config(conn, endpoints.config_plan(_settings([RULE], []), 1.0))
    conn.execute("UPDATE endpoints SET source='api', config_key=NULL")
    rows.sync_config(conn, endpoints.config_plan(_settings([], []), 2.0))
    assert len(rows.load_all(conn)) == 1


def test_identical_entries_are_told_apart() -> None:
    conn = _db()
    rows.sync_config(conn, endpoints.config_plan(_settings([RULE, RULE], []), 1.0))
    assert len(rows.load_all(conn)) == 2
    assert rows.sync_config(conn, endpoints.config_plan(_settings([RULE, RULE], []), 2.0)) == []


def test_config_rejects_bad_entries_loudly() -> None:
    import pytest

    for bad, needle in [
        ({"tenant": [{"name": "a", "call_event": [{**RULE, "event": "ring"}]}]}, "event"),
        ({"tenant": [{"name": "a", "call_event": [{**RULE, "url": "crm/x"}]}]}, "url"),
        ({"tenant": [{"name": "a", "webhook": [{**HOOK, "secret": "nope"}]}]}, "secret"),
        ({"tenant": [{"name": "a", "webhook": [{**HOOK, "topics": ["calls"]}]}]}, "topics"),
        ({"tenant": [{"name": "a", "webhook": [{**HOOK, "schedule": []}]}]}, "schedule"),
    ]:
        with pytest.raises(config.ConfigError, match=needle):
            config.parse(bad, env={})
