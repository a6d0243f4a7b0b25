"""Tenants, extensions, queues and trunks: config applied idempotently, and read back."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from callhook import security
from callhook.config import Settings, TenantConfig
from callhook.directory import Extension, Queue, Tenant
from callhook.events import new_id
from callhook.store.records import ApplyReport
from callhook.store.sql import Conn

# `tenants.source` of a tenant the config file declared once and no longer does.
DETACHED = "detached"


# (stored hash, SHA-256 of a config password) found to match in this process: a config
# reload re-applies every password of the file, and an Argon2 check costs ~15 ms (a
# second for 70 unchanged extensions) where the promise is "seen by every node within 1 s".
_MATCHED: set[tuple[str, bytes]] = set()


def _password_hash(stored: str, password: str) -> str:
    """Keep the stored hash when the password is the same (idempotent restarts)."""
    if not password:
        return ""
    seen = (stored, hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())
    if stored and (seen in _MATCHED or security.verify_password(stored, password)):
        if len(_MATCHED) >= 100_000:
            _MATCHED.clear()
        _MATCHED.add(seen)
        return stored
    return security.hash_password(password)


def hash_passwords(settings: Settings, conn: Conn) -> dict[tuple[str, str], str]:
    """Argon2 hashes for every config password, reusing stored ones that still match.

    Run outside the writer transaction: hashing is slow and must not hold the write lock.
    Keys: (tenant, "") for the tenant password, (tenant, number) for extensions.
    """
    stored: dict[tuple[str, str], str] = {}
    for name, h in conn.execute("SELECT name, password_hash FROM tenants"):
        stored[(name, "")] = h
    for tenant, number, h in conn.execute("SELECT tenant, number, password_hash FROM extensions"):
        stored[(tenant, number)] = h
    out = {}
    for t in settings.tenant:
        out[(t.name, "")] = _password_hash(stored.get((t.name, ""), ""), t.password)
        for e in t.extension:
            out[(t.name, e.number)] = _password_hash(stored.get((t.name, e.number), ""), e.password)
    return out


def apply_config(conn: Conn, settings: Settings, hashes: dict[tuple[str, str], str]) -> ApplyReport:
    """Make the database match the config file's directory; entries made by API stay.

    A tenant dropped from the file is detached, not deleted: a renamed tenant or a file
    edited by mistake must not cost its events and CDRs. It keeps its data and its WSI
    password but gives up its ingest token (a renamed tenant may take it over), until it is
    declared again or purged (`callhook tenants purge`, or the API's DELETE). If the file
    gives a tenant an ingest token that an API-made tenant holds, nothing is changed and
    the report says why (`refused`).
    """
    declared = {t.name for t in settings.tenant}
    report = ApplyReport(refused=_tokens_taken(conn, settings, declared))
    if report.refused:
        return report
    for (name,) in conn.execute("SELECT name FROM tenants WHERE source='config'").fetchall():
        if name not in declared:
            conn.execute(
                f"UPDATE tenants SET source='{DETACHED}', ingest_token='' WHERE name=?", (name,)
            )
            report.detached.append(name)
    for t in settings.tenant:
        _apply_tenant(conn, t, hashes, report)
    report.kept = [
        r[0]
        for r in conn.execute(f"SELECT name FROM tenants WHERE source='{DETACHED}' ORDER BY name")
    ]
    return report


def _tokens_taken(conn: Conn, settings: Settings, declared: set[str]) -> list[str]:
    """File tenants whose ingest token an API-made tenant holds (the file's own tenants
    are checked against each other by the config loader; undeclared ones are removed)."""
    taken = []
    for i, t in enumerate(settings.tenant):
        if not t.ingest_token:
            continue
        for (other,) in conn.execute(
            "SELECT name FROM tenants WHERE ingest_token=? AND source<>'config' ORDER BY name",
            (t.ingest_token,),
        ):
            if other not in declared:
                taken.append(
                    f"tenant[{i}].ingest_token: already used by tenant {other!r}"
                    " (made through the API)"
                )
    return taken


def _apply_tenant(
    conn: Conn,
    t: TenantConfig,
    hashes: dict[tuple[str, str], str],
    report: ApplyReport,
) -> None:
    domain = t.domain or f"{t.name}.local"
    values = (
        domain,
        t.ingest_token,
        hashes[(t.name, "")],
        json.dumps(t.open_ingest_networks),
        t.extended_prefix,
    )
    row = conn.execute(
        "SELECT domain, ingest_token, password_hash, open_ingest_networks, extended_prefix,"
        " source FROM tenants WHERE name=?",
        (t.name,),
    ).fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO tenants (name, tenant_id, domain, ingest_token, password_hash,"
            " open_ingest_networks, extended_prefix, source, created_at)"
            " VALUES (?,?,?,?,?,?,?,'config',?)",
            (t.name, new_id(), *values, time.time()),
        )
        report.added.append(f"tenant {t.name}")
    elif tuple(row)[:5] != values or row[5] == DETACHED:  # declared again: data back in use
        conn.execute(
            "UPDATE tenants SET domain=?, ingest_token=?, password_hash=?, open_ingest_networks=?,"
            " extended_prefix=?, source='config' WHERE name=?",
            (*values, t.name),
        )
        report.changed.append(f"tenant {t.name}")

    ext_rows = {
        e.number: (e.display_name, hashes[(t.name, e.number)], json.dumps(sorted(e.groups)))
        for e in t.extension
    }
    _sync(
        conn,
        report,
        f"tenant {t.name} extension",
        "SELECT number, display_name, password_hash, groups FROM extensions"
        " WHERE tenant=? AND source='config'",
        t.name,
        ext_rows,
        delete="DELETE FROM extensions WHERE tenant=? AND number=?",
        upsert=lambda key, v: conn.execute(
            "INSERT INTO extensions VALUES (?,?,?,?,?,?,'config') ON CONFLICT (tenant, number)"
            " DO UPDATE SET display_name=excluded.display_name,"
            " password_hash=excluded.password_hash, groups=excluded.groups, source='config'",
            (t.name, key, new_id(), *v),
        ),
    )
    queue_rows = {
        q.number: (json.dumps(sorted(q.members)), json.dumps(sorted(q.managers))) for q in t.queue
    }
    _sync(
        conn,
        report,
        f"tenant {t.name} queue",
        "SELECT number, members, managers FROM queues WHERE tenant=? AND source='config'",
        t.name,
        queue_rows,
        delete="DELETE FROM queues WHERE tenant=? AND number=?",
        upsert=lambda key, v: conn.execute(
            "INSERT INTO queues VALUES (?,?,?,?,'config') ON CONFLICT (tenant, number) DO UPDATE"
            " SET members = excluded.members, managers = excluded.managers, source = 'config'",
            (t.name, key, *v),
        ),
    )
    _sync(
        conn,
        report,
        f"tenant {t.name} trunk",
        "SELECT name FROM trunks WHERE tenant=? AND source='config'",
        t.name,
        {tr.name: () for tr in t.trunk},
        delete="DELETE FROM trunks WHERE tenant=? AND name=?",
        upsert=lambda key, v: conn.execute(
            "INSERT INTO trunks VALUES (?,?,'config') ON CONFLICT (tenant, name)"
            " DO UPDATE SET source = 'config'",
            (t.name, key),
        ),
    )


def _sync(
    conn: Conn,
    report: ApplyReport,
    label: str,
    select: str,
    tenant: str,
    wanted: dict[str, tuple[Any, ...]],
    *,
    delete: str,
    upsert: Any,
) -> None:
    existing = {r[0]: tuple(r[1:]) for r in conn.execute(select, (tenant,))}
    for key in existing.keys() - wanted.keys():
        conn.execute(delete, (tenant, key))
        report.removed.append(f"{label} {key}")
    for key, values in wanted.items():
        if key not in existing:
            upsert(key, values)
            report.added.append(f"{label} {key}")
        elif existing[key] != values:
            upsert(key, values)
            report.changed.append(f"{label} {key}")


def load_tenants(conn: Conn) -> dict[str, Tenant]:
    """The whole directory, for the in-memory read model."""
    tenants: dict[str, Tenant] = {}
    for name, tid, domain, token, networks, prefix in conn.execute(
        "SELECT name, tenant_id, domain, ingest_token, open_ingest_networks, extended_prefix"
        " FROM tenants"
    ):
        tenants[name] = Tenant(
            name=name,
            tenant_id=tid,
            domain=domain,
            ingest_token=token,
            open_ingest_networks=tuple(json.loads(networks)),
            extended_prefix=prefix,
        )
    for tenant, number, eid, display, groups in conn.execute(
        "SELECT tenant, number, extension_id, display_name, groups FROM extensions"
    ):
        if tenant in tenants:
            tenants[tenant].extensions[number] = Extension(
                number=number,
                display_name=display,
                groups=tuple(json.loads(groups)),
                extension_id=eid,
            )
    for tenant, number, members, managers in conn.execute(
        "SELECT tenant, number, members, managers FROM queues"
    ):
        if tenant in tenants:
            tenants[tenant].queues[number] = Queue(
                number=number,
                members=tuple(json.loads(members)),
                managers=tuple(json.loads(managers)),
            )
    for tenant, name in conn.execute("SELECT tenant, name FROM trunks"):
        if tenant in tenants:
            tenants[tenant].trunks = (*tenants[tenant].trunks, name)
    return tenants


def password_hash(conn: Conn, tenant: str, extension: str | None) -> str:
    """The stored Argon2 hash for WSI auth ('' when none)."""
    if extension is None:
        row = conn.execute("SELECT password_hash FROM tenants WHERE name=?", (tenant,)).fetchone()
    else:
        row = conn.execute(
            "SELECT password_hash FROM extensions WHERE tenant=? AND number=?", (tenant, extension)
        ).fetchone()
    return str(row[0]) if row else ""


def tenant_of_api_key(conn: Conn, key: str) -> str | None:
    row = conn.execute(
        "SELECT tenant FROM api_keys WHERE key_hash=? AND revoked_at IS NULL",
        (security.hash_api_key(key),),
    ).fetchone()
    return str(row[0]) if row else None


def create_api_key(conn: Conn, tenant: str, name: str) -> tuple[str, str]:
    """Returns (key_id, key); only the hash is stored."""
    key = security.new_api_key()
    key_id = new_id()
    conn.execute(
        "INSERT INTO api_keys VALUES (?,?,?,?,?,NULL)",
        (key_id, tenant, security.hash_api_key(key), name, time.time()),
    )
    return key_id, key
