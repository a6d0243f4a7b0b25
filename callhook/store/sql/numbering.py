"""A tenant's numbering plan as the REST API changes it: extensions, groups, queues, trunks.

Rows created here carry `source='api'`; a config-declared row changed here keeps
`source='config'`, so the config file wins again at the next start (docs/api.md). Like
tenants.py, write functions report an outcome instead of raising.
"""

from __future__ import annotations

import json
from typing import Any

from callhook.events import new_id
from callhook.store.records import Outcome
from callhook.store.sql import Conn
from callhook.store.sql.tenants import like_escape


def _tenant_exists(conn: Conn, tenant: str) -> bool:
    return conn.execute("SELECT 1 FROM tenants WHERE name = ?", (tenant,)).fetchone() is not None


# extensions ----------------------------------------------------------------------------
_EXT_SELECT = (
    "SELECT number, extension_id, display_name, password_hash, groups, source FROM extensions e"
)


def _extension(row: tuple[Any, ...]) -> dict[str, Any]:
    number, eid, display, pw, groups, source = row
    return {
        "number": number,
        "extension_id": eid,
        "display_name": display,
        "has_password": bool(pw),
        "groups": json.loads(groups),
        "source": source,
    }


def list_extensions(
    conn: Conn,
    tenant: str,
    *,
    after: str = "",
    limit: int = 100,
    group: str | None = None,
    search: str | None = None,
) -> list[dict[str, Any]]:
    sql = _EXT_SELECT + " WHERE tenant = ? AND number > ?"
    args: list[Any] = [tenant, after]
    if group:
        sql += " AND EXISTS (SELECT 1 FROM json_each(e.groups) WHERE value = ?)"
        args.append(group)
    if search:
        # lower() on both sides: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
        sql += (
            " AND (lower(number) LIKE lower(?) ESCAPE '\\'"
            " OR lower(display_name) LIKE lower(?) ESCAPE '\\')"
        )
        args += [like_escape(search)] * 2
    sql += " ORDER BY number LIMIT ?"
    args.append(limit)
    return [_extension(r) for r in conn.execute(sql, args)]


def get_extension(conn: Conn, tenant: str, number: str) -> dict[str, Any] | None:
    row = conn.execute(_EXT_SELECT + " WHERE tenant = ? AND number = ?", (tenant, number))
    found = row.fetchone()
    return _extension(found) if found else None


def create_extension(
    conn: Conn,
    tenant: str,
    number: str,
    display_name: str,
    password_hash: str,
    groups: list[str],
) -> Outcome:
    if not _tenant_exists(conn, tenant):
        return "missing"
    if get_extension(conn, tenant, number) is not None:
        return "exists"
    conn.execute(
        "INSERT INTO extensions (tenant, number, extension_id, display_name, password_hash,"
        " groups, source) VALUES (?,?,?,?,?,?,'api')",
        (tenant, number, new_id(), display_name, password_hash, json.dumps(sorted(set(groups)))),
    )
    return "ok"


def update_extension(
    conn: Conn,
    tenant: str,
    number: str,
    *,
    display_name: str | None = None,
    password_hash: str | None = None,
    groups: list[str] | None = None,
) -> Outcome:
    if get_extension(conn, tenant, number) is None:
        return "missing"
    sets: list[str] = []
    args: list[Any] = []
    if display_name is not None:
        sets.append("display_name = ?")
        args.append(display_name)
    if password_hash is not None:
        sets.append("password_hash = ?")
        args.append(password_hash)
    if groups is not None:
        sets.append("groups = ?")
        args.append(json.dumps(sorted(set(groups))))
    if sets:
        conn.execute(
            f"UPDATE extensions SET {', '.join(sets)} WHERE tenant = ? AND number = ?",
            (*args, tenant, number),
        )
    return "ok"


def delete_extension(conn: Conn, tenant: str, number: str) -> bool:
    cur = conn.execute("DELETE FROM extensions WHERE tenant = ? AND number = ?", (tenant, number))
    return cur.rowcount > 0


# groups: derived from the extensions' `groups` -----------------------------------------
def groups(conn: Conn, tenant: str) -> dict[str, list[str]]:
    """Group name -> member numbers, both sorted."""
    out: dict[str, list[str]] = {}
    for number, names in conn.execute(
        "SELECT number, groups FROM extensions WHERE tenant = ? ORDER BY number", (tenant,)
    ):
        for name in json.loads(names):
            out.setdefault(name, []).append(number)
    return dict(sorted(out.items()))


def set_group(conn: Conn, tenant: str, group: str, members: list[str]) -> list[str]:
    """Make exactly `members` belong to `group`; returns unknown numbers (nothing changed)."""
    rows = {
        n: json.loads(g)
        for n, g in conn.execute(
            "SELECT number, groups FROM extensions WHERE tenant = ?", (tenant,)
        )
    }
    unknown = sorted(set(members) - rows.keys())
    if unknown:
        return unknown
    wanted = set(members)
    for number, names in rows.items():
        has = group in names
        if (number in wanted) != has:
            new = sorted({*names, group}) if number in wanted else [g for g in names if g != group]
            conn.execute(
                "UPDATE extensions SET groups = ? WHERE tenant = ? AND number = ?",
                (json.dumps(new), tenant, number),
            )
    return []


# queues --------------------------------------------------------------------------------
def _queue(row: tuple[Any, ...]) -> dict[str, Any]:
    number, members, managers, source = row
    return {
        "number": number,
        "members": json.loads(members),
        "managers": json.loads(managers),
        "source": source,
    }


def list_queues(
    conn: Conn,
    tenant: str,
    *,
    after: str = "",
    limit: int = 100,
    member: str | None = None,
) -> list[dict[str, Any]]:
    sql = "SELECT number, members, managers, source FROM queues q WHERE tenant = ? AND number > ?"
    args: list[Any] = [tenant, after]
    if member:
        sql += (
            " AND (EXISTS (SELECT 1 FROM json_each(q.members) WHERE value = ?)"
            " OR EXISTS (SELECT 1 FROM json_each(q.managers) WHERE value = ?))"
        )
        args += [member, member]
    sql += " ORDER BY number LIMIT ?"
    args.append(limit)
    return [_queue(r) for r in conn.execute(sql, args)]


def get_queue(conn: Conn, tenant: str, number: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT number, members, managers, source FROM queues WHERE tenant = ? AND number = ?",
        (tenant, number),
    ).fetchone()
    return _queue(row) if row else None


def save_queue(
    conn: Conn,
    tenant: str,
    number: str,
    members: list[str] | None,
    managers: list[str] | None,
    *,
    create: bool,
) -> Outcome:
    """Create (`create=True`) or update a queue; None leaves a list as it is."""
    if not _tenant_exists(conn, tenant):
        return "missing"
    current = get_queue(conn, tenant, number)
    if create and current is not None:
        return "exists"
    if not create and current is None:
        return "missing"
    mem = sorted(set(members if members is not None else (current or {}).get("members", [])))
    man = sorted(set(managers if managers is not None else (current or {}).get("managers", [])))
    if current is None:
        conn.execute(
            "INSERT INTO queues (tenant, number, members, managers, source) VALUES (?,?,?,?,'api')",
            (tenant, number, json.dumps(mem), json.dumps(man)),
        )
    else:
        conn.execute(
            "UPDATE queues SET members = ?, managers = ? WHERE tenant = ? AND number = ?",
            (json.dumps(mem), json.dumps(man), tenant, number),
        )
    return "ok"


def delete_queue(conn: Conn, tenant: str, number: str) -> bool:
    cur = conn.execute("DELETE FROM queues WHERE tenant = ? AND number = ?", (tenant, number))
    return cur.rowcount > 0


# trunks --------------------------------------------------------------------------------
def list_trunks(
    conn: Conn, tenant: str, *, after: str = "", limit: int = 100
) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT name, source FROM trunks WHERE tenant = ? AND name > ? ORDER BY name LIMIT ?",
        (tenant, after, limit),
    )
    return [{"name": n, "source": s} for n, s in rows]


def get_trunk(conn: Conn, tenant: str, name: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT name, source FROM trunks WHERE tenant = ? AND name = ?", (tenant, name)
    ).fetchone()
    return {"name": row[0], "source": row[1]} if row else None


def create_trunk(conn: Conn, tenant: str, name: str) -> Outcome:
    if not _tenant_exists(conn, tenant):
        return "missing"
    if get_trunk(conn, tenant, name) is not None:
        return "exists"
    conn.execute("INSERT INTO trunks (tenant, name, source) VALUES (?,?,'api')", (tenant, name))
    return "ok"


def delete_trunk(conn: Conn, tenant: str, name: str) -> bool:
    cur = conn.execute("DELETE FROM trunks WHERE tenant = ? AND name = ?", (tenant, name))
    return cur.rowcount > 0
