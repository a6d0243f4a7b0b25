"""Endpoints in the database: rows <-> `Endpoint`, CRUD, and the config file applied.

Rules and webhooks declared in the config file are applied idempotently at start, like the
directory (store/directory.py): marked `source='config'`, found again by a key derived from
what identifies them, updated in place (keeping their id and delivery log), and removed
when they disappear from the file. Entries made over the API are left alone.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import orjson

from callhook.config import CallEventConfig, Settings, WebhookConfig
from callhook.deliver import rules, signing
from callhook.deliver.rules import Endpoint
from callhook.events import new_id

log = logging.getLogger(__name__)

_COLUMNS = (
    "endpoint_id, tenant, kind, url, enabled, disabled_reason, health, failing_since, secrets,"
    " spec, source, config_key, created_at, updated_at"
)


def from_row(r: tuple[Any, ...]) -> Endpoint:
    # `or`, not a default: a null that an older version stored reads as the default (it
    # once made every listing of the tenant's rules fail).
    spec: dict[str, Any] = orjson.loads(r[9])
    common: dict[str, Any] = {
        "endpoint_id": r[0],
        "tenant": r[1],
        "kind": r[2],
        "url": r[3],
        "enabled": bool(r[4]),
        "disabled_reason": r[5],
        "health": r[6],
        "failing_since": r[7],
        "secrets": tuple(orjson.loads(r[8])),
        "source": r[10],
        "created_at": r[12],
        "updated_at": r[13],
    }
    if r[2] == "webhook":
        schedule = spec.get("schedule")
        common.update(
            topics=frozenset(spec.get("topics") or ()),
            keys=frozenset(spec.get("keys") or ()),
            extensions=frozenset(spec.get("extensions") or ()),
            schedule=tuple(float(x) for x in schedule) if schedule is not None else None,
            description=spec.get("description") or "",
        )
    else:
        common.update(
            extension=spec.get("extension") or "",
            event=spec.get("event") or "",
            method=spec.get("method") or "POST",
            format=spec.get("format") or "form",
            notes=spec.get("notes") or "",
            custom_data=tuple(sorted((spec.get("custom_data") or {}).items())),
        )
    try:
        return rules.build(**common)
    except signing.BadSecret as exc:
        log.error("%s %s of tenant %s is held: %s", r[2], r[0], r[1], exc)
        return rules.unusable(**common)


def _values(ep: Endpoint, config_key: str | None) -> tuple[Any, ...]:
    return (
        ep.endpoint_id,
        ep.tenant,
        ep.kind,
        ep.url,
        int(ep.enabled),
        ep.disabled_reason,
        ep.health,
        ep.failing_since,
        orjson.dumps(list(ep.secrets)).decode(),
        orjson.dumps(ep.spec()).decode(),
        ep.source,
        config_key,
        ep.created_at,
        ep.updated_at,
    )


def load_all(conn: sqlite3.Connection) -> list[Endpoint]:
    return [from_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM endpoints")]


def get(conn: sqlite3.Connection, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM endpoints WHERE endpoint_id=?", (endpoint_id,)
    ).fetchone()
    return from_row(row) if row else None


def insert(conn: sqlite3.Connection, ep: Endpoint, config_key: str | None = None) -> None:
    conn.execute(f"INSERT INTO endpoints ({_COLUMNS}) VALUES ({','.join('?' * 14)})",
                 _values(ep, config_key))  # fmt: skip


def update(conn: sqlite3.Connection, ep: Endpoint) -> None:
    """Write back everything but the id, tenant, kind, source and config key."""
    v = _values(ep, None)
    conn.execute(
        "UPDATE endpoints SET url=?, enabled=?, disabled_reason=?, health=?, failing_since=?,"
        " secrets=?, spec=?, updated_at=? WHERE endpoint_id=?",
        (v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[13], ep.endpoint_id),
    )


def set_state(
    conn: sqlite3.Connection,
    endpoint_id: str,
    *,
    health: str,
    failing_since: float | None,
    disabled_reason: str,
    now: float,
) -> None:
    conn.execute(
        "UPDATE endpoints SET health=?, failing_since=?, disabled_reason=?, updated_at=?"
        " WHERE endpoint_id=?",
        (health, failing_since, disabled_reason, now, endpoint_id),
    )


def delete(conn: sqlite3.Connection, endpoint_id: str) -> None:
    """The endpoint and its whole delivery log."""
    conn.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN"
        " (SELECT delivery_id FROM deliveries WHERE endpoint_id=?)",
        (endpoint_id,),
    )
    conn.execute("DELETE FROM deliveries WHERE endpoint_id=?", (endpoint_id,))
    conn.execute("DELETE FROM endpoints WHERE endpoint_id=?", (endpoint_id,))


def delete_orphans(conn: sqlite3.Connection) -> None:
    """Deliveries of endpoints that went away with their tenant (tenants cascade)."""
    conn.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT delivery_id FROM deliveries"
        " WHERE endpoint_id NOT IN (SELECT endpoint_id FROM endpoints))"
    )
    conn.execute(
        "DELETE FROM deliveries WHERE endpoint_id NOT IN (SELECT endpoint_id FROM endpoints)"
    )


def _from_call_event(tenant: str, c: CallEventConfig) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "kind": "call_event",
        "url": c.url,
        "enabled": c.enabled,
        "secrets": (c.secret,) if c.secret else (),
        "extension": c.extension,
        "event": c.event,
        "method": c.method,
        "format": c.format,
        "notes": c.notes,
        "custom_data": tuple(sorted(c.custom_data.items())),
    }


def _from_webhook(tenant: str, w: WebhookConfig) -> dict[str, Any]:
    secrets = ([w.secret] if w.secret else []) + [s for s in w.secrets if s != w.secret]
    return {
        "tenant": tenant,
        "kind": "webhook",
        "url": w.url,
        "enabled": w.enabled,
        "secrets": tuple(secrets),
        "topics": frozenset(w.topics),
        "keys": frozenset(w.keys),
        "extensions": frozenset(w.extensions),
        "schedule": tuple(w.schedule) if w.schedule is not None else None,
    }


def declared(settings: Settings) -> dict[tuple[str, str], dict[str, Any]]:
    """(tenant, config key) -> endpoint fields, for every rule and webhook in the file."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for t in settings.tenant:
        seen: Counter[str] = Counter()
        entries: Iterable[tuple[str, dict[str, Any]]] = [
            (f"call_event|{c.extension}|{c.event}|{c.method}|{c.url}", _from_call_event(t.name, c))
            for c in t.call_event
        ] + [(f"webhook|{w.url}", _from_webhook(t.name, w)) for w in t.webhook]
        for ident, fields in entries:
            seen[ident] += 1
            out[(t.name, f"{ident}#{seen[ident]}")] = fields
    return out


def apply_config(conn: sqlite3.Connection, settings: Settings, now: float) -> list[str]:
    """Make config-declared endpoints match the file; returns what changed."""
    changes: list[str] = []
    existing = {
        (r[1], r[11]): from_row(r)
        for r in conn.execute(f"SELECT {_COLUMNS} FROM endpoints WHERE source='config'")
    }
    wanted = declared(settings)
    for (tenant, key), ep in existing.items():
        if (tenant, key) not in wanted:
            delete(conn, ep.endpoint_id)
            changes.append(f"removed {ep.kind} {ep.endpoint_id} of tenant {tenant}")
    for (tenant, key), fields in wanted.items():
        old = existing.get((tenant, key))
        if old is None:
            ep = rules.build(endpoint_id=new_id(), source="config", created_at=now,
                             updated_at=now, **fields)  # fmt: skip
            insert(conn, ep, key)
            changes.append(f"added {ep.kind} {ep.endpoint_id} of tenant {tenant}")
            continue
        candidate = rules.build(
            endpoint_id=old.endpoint_id,
            source="config",
            created_at=old.created_at,
            updated_at=old.updated_at,
            health=old.health,
            failing_since=old.failing_since,
            # The file's secret is valid (the config loader checked it): a stored one that
            # was not stops holding deliveries.
            disabled_reason="" if old.disabled_reason == rules.BAD_SECRET else old.disabled_reason,
            **fields,
        )
        if candidate != old:
            update(conn, replace(candidate, updated_at=now))
            changes.append(f"changed {old.kind} {old.endpoint_id} of tenant {tenant}")
    return changes
