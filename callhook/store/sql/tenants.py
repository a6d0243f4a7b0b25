"""Tenant rows and tenant API keys, as the REST API and the CLI change them.

Write functions run inside the single writer's transaction (`store.write`) and report an
outcome instead of raising, because the writer turns exceptions into `StoreError` and
retries its batch one by one. Passwords arrive already hashed: Argon2 is slow and must not
run while the write lock is held.
"""

from __future__ import annotations

import json
import time
from typing import Any

from callhook import security
from callhook.events import new_id
from callhook.store.records import Outcome, TenantValues
from callhook.store.sql import Conn

_TENANT_SELECT = (
    "SELECT t.name, t.tenant_id, t.domain, t.ingest_token, t.password_hash,"
    " t.open_ingest_networks, t.source, t.created_at, t.extended_prefix,"
    " (SELECT COUNT(*) FROM extensions e WHERE e.tenant = t.name),"
    " (SELECT COUNT(*) FROM queues q WHERE q.tenant = t.name),"
    " (SELECT COUNT(*) FROM trunks r WHERE r.tenant = t.name)"
    " FROM tenants t"
)


def _tenant(row: tuple[Any, ...]) -> dict[str, Any]:
    name, tid, domain, token, pw, nets, source, created, prefix, n_ext, n_q, n_tr = row
    return {
        "name": name,
        "tenant_id": tid,
        "domain": domain,
        "ingest_token": token,
        "has_password": bool(pw),
        "open_ingest_networks": json.loads(nets),
        "extended_prefix": prefix,
        "source": source,
        "created_at": created,
        "extensions": n_ext,
        "queues": n_q,
        "trunks": n_tr,
    }


def like_escape(text: str) -> str:
    """`text` as a LIKE substring pattern (with ESCAPE '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def list_tenants(
    conn: Conn, *, after: str = "", limit: int = 100, search: str | None = None
) -> list[dict[str, Any]]:
    sql = _TENANT_SELECT + " WHERE t.name > ?"
    args: list[Any] = [after]
    if search:
        sql += " AND lower(t.name) LIKE lower(?) ESCAPE '\\'"  # any case, on both engines
        args.append(like_escape(search))
    sql += " ORDER BY t.name LIMIT ?"
    args.append(limit)
    return [_tenant(r) for r in conn.execute(sql, args)]


def get_tenant(conn: Conn, name: str) -> dict[str, Any] | None:
    row = conn.execute(_TENANT_SELECT + " WHERE t.name = ?", (name,)).fetchone()
    return _tenant(row) if row else None


def _token_taken(conn: Conn, token: str, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM tenants WHERE ingest_token = ? AND name <> ?", (token, name)
    ).fetchone()
    return row is not None


def create_tenant(conn: Conn, name: str, values: TenantValues) -> Outcome:
    """Insert an API-managed tenant (not while a deleted namesake's data is being removed)."""
    if conn.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)).fetchone():
        return "exists"
    if conn.execute("SELECT 1 FROM tenant_purges WHERE name = ?", (name,)).fetchone():
        return "purging"
    token = values.ingest_token or ""
    if token and _token_taken(conn, token, name):
        return "token-taken"
    conn.execute(
        "INSERT INTO tenants (name, tenant_id, domain, ingest_token, password_hash,"
        " open_ingest_networks, extended_prefix, source, created_at)"
        " VALUES (?,?,?,?,?,?,?,'api',?)",
        (
            name,
            new_id(),
            values.domain or f"{name}.local",
            token,
            values.password_hash or "",
            json.dumps(values.open_ingest_networks or []),
            values.extended_prefix or "",
            time.time(),
        ),
    )
    return "ok"


def update_tenant(conn: Conn, name: str, values: TenantValues) -> Outcome:
    """Change the given fields; a config-declared tenant stays `source='config'`."""
    if not conn.execute("SELECT 1 FROM tenants WHERE name = ?", (name,)).fetchone():
        return "missing"
    if values.ingest_token and _token_taken(conn, values.ingest_token, name):
        return "token-taken"
    sets: list[str] = []
    args: list[Any] = []
    for column, value in (
        ("domain", values.domain),
        ("password_hash", values.password_hash),
        ("ingest_token", values.ingest_token),
        ("extended_prefix", values.extended_prefix),
        (
            "open_ingest_networks",
            None
            if values.open_ingest_networks is None
            else json.dumps(values.open_ingest_networks),
        ),
    ):
        if value is not None:
            sets.append(f"{column} = ?")
            args.append(value)
    if sets:
        conn.execute(f"UPDATE tenants SET {', '.join(sets)} WHERE name = ?", (*args, name))
    return "ok"


def delete_tenant(conn: Conn, name: str) -> bool:
    """Delete the tenant; its extensions, queues, trunks and keys go with it (cascade).

    Its events, CDRs and the like are many: the row in `tenant_purges` asks retention to
    remove them in the background (callhook/retention.py), resumed after a restart.
    """
    if conn.execute("DELETE FROM tenants WHERE name = ?", (name,)).rowcount == 0:
        return False
    conn.execute(
        "INSERT INTO tenant_purges (name, requested_at) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET requested_at = excluded.requested_at",
        (name, time.time()),
    )
    return True


# API keys ------------------------------------------------------------------------------
def _key(row: tuple[Any, ...]) -> dict[str, Any]:
    key_id, tenant, name, created, revoked = row
    return {
        "key_id": key_id,
        "tenant": tenant,
        "name": name,
        "created_at": created,
        "revoked_at": revoked,
    }


def list_api_keys(
    conn: Conn,
    tenant: str,
    *,
    after: str = "",
    limit: int = 100,
    include_revoked: bool = False,
) -> list[dict[str, Any]]:
    sql = (
        "SELECT key_id, tenant, name, created_at, revoked_at FROM api_keys"
        " WHERE tenant = ? AND key_id > ?"
    )
    if not include_revoked:
        sql += " AND revoked_at IS NULL"
    sql += " ORDER BY key_id LIMIT ?"
    return [_key(r) for r in conn.execute(sql, (tenant, after, limit))]


def get_api_key(conn: Conn, key_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT key_id, tenant, name, created_at, revoked_at FROM api_keys WHERE key_id = ?",
        (key_id,),
    ).fetchone()
    return _key(row) if row else None


def create_api_key(conn: Conn, tenant: str, name: str) -> dict[str, Any] | None:
    """A new key for `tenant` (None if no such tenant); the key itself is in `key`, once."""
    if not conn.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone():
        return None
    key = security.new_api_key()
    key_id = new_id()
    now = time.time()
    conn.execute(
        "INSERT INTO api_keys (key_id, tenant, key_hash, name, created_at, revoked_at)"
        " VALUES (?,?,?,?,?,NULL)",
        (key_id, tenant, security.hash_api_key(key), name, now),
    )
    return {
        "key_id": key_id,
        "tenant": tenant,
        "name": name,
        "created_at": now,
        "revoked_at": None,
        "key": key,
    }


def revoke_api_key(conn: Conn, key_id: str, tenant: str | None = None) -> bool:
    """Revoke a key (idempotent); False when no such key (of that tenant)."""
    row = conn.execute("SELECT tenant FROM api_keys WHERE key_id = ?", (key_id,)).fetchone()
    if row is None or (tenant is not None and row[0] != tenant):
        return False
    conn.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
        (time.time(), key_id),
    )
    return True
