"""Endpoint rows <-> `Endpoint`: load, insert, update, health, delete, config sync."""

from __future__ import annotations

import logging
from typing import Any

import orjson

from callhook.deliver import rules, signing
from callhook.deliver.rules import Endpoint
from callhook.store import EndpointPlan
from callhook.store.sql import Conn

log = logging.getLogger("callhook.deliver.endpoints")

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


def load_all(conn: Conn) -> list[Endpoint]:
    return [from_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM endpoints")]


def get(conn: Conn, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM endpoints WHERE endpoint_id=?", (endpoint_id,)
    ).fetchone()
    return from_row(row) if row else None


def insert(conn: Conn, ep: Endpoint, config_key: str | None = None) -> None:
    conn.execute(f"INSERT INTO endpoints ({_COLUMNS}) VALUES ({','.join('?' * 14)})",
                 _values(ep, config_key))  # fmt: skip


def update(conn: Conn, ep: Endpoint) -> None:
    """Write back everything but the id, tenant, kind, source and config key."""
    v = _values(ep, None)
    conn.execute(
        "UPDATE endpoints SET url=?, enabled=?, disabled_reason=?, health=?, failing_since=?,"
        " secrets=?, spec=?, updated_at=? WHERE endpoint_id=?",
        (v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[13], ep.endpoint_id),
    )


def set_state(
    conn: Conn,
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


def delete(conn: Conn, endpoint_id: str) -> None:
    """The endpoint and its whole delivery log."""
    conn.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN"
        " (SELECT delivery_id FROM deliveries WHERE endpoint_id=?)",
        (endpoint_id,),
    )
    conn.execute("DELETE FROM deliveries WHERE endpoint_id=?", (endpoint_id,))
    conn.execute("DELETE FROM endpoints WHERE endpoint_id=?", (endpoint_id,))


def delete_orphans(conn: Conn) -> None:
    """Deliveries of endpoints that went away with their tenant (tenants cascade)."""
    conn.execute(
        "DELETE FROM delivery_attempts WHERE delivery_id IN (SELECT delivery_id FROM deliveries"
        " WHERE endpoint_id NOT IN (SELECT endpoint_id FROM endpoints))"
    )
    conn.execute(
        "DELETE FROM deliveries WHERE endpoint_id NOT IN (SELECT endpoint_id FROM endpoints)"
    )


def sync_config(conn: Conn, plan: EndpointPlan) -> list[str]:
    """Apply the plan for config-declared endpoints; then drop orphaned deliveries."""
    existing = {
        (r[1], r[11]): from_row(r)
        for r in conn.execute(f"SELECT {_COLUMNS} FROM endpoints WHERE source='config'")
    }
    by_id = {ep.endpoint_id: ep for ep in existing.values()}
    deletes, inserts, updates = plan(existing)
    changes: list[str] = []
    for endpoint_id in deletes:
        old = by_id[endpoint_id]
        delete(conn, endpoint_id)
        changes.append(f"removed {old.kind} {endpoint_id} of tenant {old.tenant}")
    for ep, key in inserts:
        insert(conn, ep, key)
        changes.append(f"added {ep.kind} {ep.endpoint_id} of tenant {ep.tenant}")
    for ep in updates:
        update(conn, ep)
        changes.append(f"changed {ep.kind} {ep.endpoint_id} of tenant {ep.tenant}")
    delete_orphans(conn)
    return changes
