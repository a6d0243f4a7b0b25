"""The directory, read-side queries and retention of the SQLite backend, as repositories.

Each method runs its SQL (store/sqlite/{tenants,numbering,directory,queries}.py) on a
reader thread or in the single writer's group-committed transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from callhook.config import Settings
from callhook.directory import Tenant
from callhook.store.records import ApplyReport, CdrFilter, Outcome, TenantValues
from callhook.store.sql import Conn, directory, numbering, queries, tenants
from callhook.store.sql.engine import ThreadEngine as Engine

T = TypeVar("T")


class _Repo:
    def __init__(self, engine: Engine) -> None:
        self._e = engine

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        return await self._e.read(fn)

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        return await self._e.write(lambda c, _st: fn(c))


class SqlDirectory(_Repo):
    """Tenants, numbering plan and API keys (store.Directory)."""

    async def load(self) -> dict[str, Tenant]:
        return await self._read(directory.load_tenants)

    async def hash_passwords(self, settings: Settings) -> dict[tuple[str, str], str]:
        # On a reader thread: Argon2 is slow, and must hold neither the loop nor the writer.
        return await self._read(lambda c: directory.hash_passwords(settings, c))

    async def apply_config(
        self, settings: Settings, hashes: dict[tuple[str, str], str]
    ) -> ApplyReport:
        return await self._write(lambda c: directory.apply_config(c, settings, hashes))

    async def password_hash(self, tenant: str, extension: str | None) -> str:
        return await self._read(lambda c: directory.password_hash(c, tenant, extension))

    # tenants and keys -------------------------------------------------------------------
    async def list_tenants(
        self, *, after: str = "", limit: int = 100, search: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._read(
            lambda c: tenants.list_tenants(c, after=after, limit=limit, search=search)
        )

    async def get_tenant(self, name: str) -> dict[str, Any] | None:
        return await self._read(lambda c: tenants.get_tenant(c, name))

    async def create_tenant(self, name: str, values: TenantValues) -> Outcome:
        return await self._write(lambda c: tenants.create_tenant(c, name, values))

    async def update_tenant(self, name: str, values: TenantValues) -> Outcome:
        return await self._write(lambda c: tenants.update_tenant(c, name, values))

    async def delete_tenant(self, name: str) -> bool:
        return await self._write(lambda c: tenants.delete_tenant(c, name))

    async def list_api_keys(
        self, tenant: str, *, after: str = "", limit: int = 100, include_revoked: bool = False
    ) -> list[dict[str, Any]]:
        return await self._read(
            lambda c: tenants.list_api_keys(
                c, tenant, after=after, limit=limit, include_revoked=include_revoked
            )
        )

    async def create_api_key(self, tenant: str, name: str) -> dict[str, Any] | None:
        return await self._write(lambda c: tenants.create_api_key(c, tenant, name))

    async def revoke_api_key(self, key_id: str, tenant: str | None = None) -> bool:
        return await self._write(lambda c: tenants.revoke_api_key(c, key_id, tenant))

    async def tenant_of_api_key(self, key: str) -> str | None:
        return await self._read(lambda c: directory.tenant_of_api_key(c, key))

    # numbering plan ---------------------------------------------------------------------
    async def list_extensions(
        self,
        tenant: str,
        *,
        after: str = "",
        limit: int = 100,
        group: str | None = None,
        search: str | None = None,
    ) -> list[dict[str, Any]]:
        return await self._read(
            lambda c: numbering.list_extensions(
                c, tenant, after=after, limit=limit, group=group, search=search
            )
        )

    async def get_extension(self, tenant: str, number: str) -> dict[str, Any] | None:
        return await self._read(lambda c: numbering.get_extension(c, tenant, number))

    async def create_extension(
        self, tenant: str, number: str, display_name: str, password_hash: str, groups: list[str]
    ) -> Outcome:
        return await self._write(
            lambda c: numbering.create_extension(
                c, tenant, number, display_name, password_hash, groups
            )
        )

    async def update_extension(
        self,
        tenant: str,
        number: str,
        *,
        display_name: str | None = None,
        password_hash: str | None = None,
        groups: list[str] | None = None,
    ) -> Outcome:
        return await self._write(
            lambda c: numbering.update_extension(
                c,
                tenant,
                number,
                display_name=display_name,
                password_hash=password_hash,
                groups=groups,
            )
        )

    async def delete_extension(self, tenant: str, number: str) -> bool:
        return await self._write(lambda c: numbering.delete_extension(c, tenant, number))

    async def groups(self, tenant: str) -> dict[str, list[str]]:
        return await self._read(lambda c: numbering.groups(c, tenant))

    async def set_group(self, tenant: str, group: str, members: list[str]) -> list[str]:
        return await self._write(lambda c: numbering.set_group(c, tenant, group, members))

    async def list_queues(
        self, tenant: str, *, after: str = "", limit: int = 100, member: str | None = None
    ) -> list[dict[str, Any]]:
        return await self._read(
            lambda c: numbering.list_queues(c, tenant, after=after, limit=limit, member=member)
        )

    async def get_queue(self, tenant: str, number: str) -> dict[str, Any] | None:
        return await self._read(lambda c: numbering.get_queue(c, tenant, number))

    async def save_queue(
        self,
        tenant: str,
        number: str,
        members: list[str] | None,
        managers: list[str] | None,
        *,
        create: bool,
    ) -> Outcome:
        return await self._write(
            lambda c: numbering.save_queue(c, tenant, number, members, managers, create=create)
        )

    async def delete_queue(self, tenant: str, number: str) -> bool:
        return await self._write(lambda c: numbering.delete_queue(c, tenant, number))

    async def list_trunks(
        self, tenant: str, *, after: str = "", limit: int = 100
    ) -> list[dict[str, Any]]:
        return await self._read(
            lambda c: numbering.list_trunks(c, tenant, after=after, limit=limit)
        )

    async def get_trunk(self, tenant: str, name: str) -> dict[str, Any] | None:
        return await self._read(lambda c: numbering.get_trunk(c, tenant, name))

    async def create_trunk(self, tenant: str, name: str) -> Outcome:
        return await self._write(lambda c: numbering.create_trunk(c, tenant, name))

    async def delete_trunk(self, tenant: str, name: str) -> bool:
        return await self._write(lambda c: numbering.delete_trunk(c, tenant, name))


class SqlQueries(_Repo):
    """CDRs and devices (store.Queries)."""

    async def cdrs(self, tenant: str, f: CdrFilter) -> list[tuple[int, bytes]]:
        return await self._read(lambda c: queries.cdrs(c, tenant, f))

    async def devices(self, tenant: str) -> list[dict[str, Any]]:
        return await self._read(lambda c: queries.devices(c, tenant))


# A deleted tenant's rows, table by table, each by its key within the tenant.
TENANT_TABLES: tuple[tuple[str, str], ...] = (
    ("events", "seq"),
    ("cdrs", "cdr_id"),
    ("sessions", "session_id"),
    ("presence", "extension"),
    ("devices", "mac"),
)


def prune_events(conn: Conn, cutoff: float, limit: int) -> int:
    """Delete up to `limit` events created before `cutoff`, never a tenant's newest (the
    writer derives the next `seq` from MAX(seq) after a restart)."""
    doomed = conn.execute(
        "SELECT tenant, seq FROM events AS e WHERE created_at < ?"
        " AND seq < (SELECT MAX(seq) FROM events WHERE tenant = e.tenant)"
        " ORDER BY created_at LIMIT ?",
        (cutoff, limit),
    ).fetchall()
    conn.executemany("DELETE FROM events WHERE tenant = ? AND seq = ?", doomed)
    return len(doomed)


def purge_batch(conn: Conn, tenant: str, limit: int) -> int:
    """Delete up to `limit` rows of a deleted tenant; 0 means nothing is left."""
    for table, key in TENANT_TABLES:
        n = conn.execute(
            f"DELETE FROM {table} WHERE tenant = ? AND {key} IN"
            f" (SELECT {key} FROM {table} WHERE tenant = ? LIMIT ?)",
            (tenant, tenant, limit),
        ).rowcount
        if n:
            return n
    conn.execute("DELETE FROM tenant_purges WHERE name = ?", (tenant,))
    return 0


class SqlMaintenance(_Repo):
    """Retention, one small batch per writer transaction (store.Maintenance)."""

    async def prune_events(self, cutoff: float, limit: int) -> int:
        return await self._write(lambda c: prune_events(c, cutoff, limit))

    async def pending_purges(self) -> list[str]:
        return await self._read(
            lambda c: [str(r[0]) for r in c.execute("SELECT name FROM tenant_purges")]
        )

    async def cancel_purges(self, names: list[str]) -> None:
        await self._write(
            lambda c: c.executemany("DELETE FROM tenant_purges WHERE name=?", [(n,) for n in names])
        )

    async def purge_batch(self, tenant: str, limit: int) -> int:
        return await self._write(lambda c: purge_batch(c, tenant, limit))
