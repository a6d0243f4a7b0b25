"""Storage: the event log and everything else callhook keeps, behind narrow repositories.

Callers see one `Store` made of repositories, one per concern (event log, correlation
state, directory, CDR and device queries, deliveries, maintenance), and the values of
`callhook/store/records.py`; never a connection, a cursor, a table name or SQL. Each
backend is one package (`store/sqlite/`), chosen by the URL scheme of `[server] database`
in `BACKENDS` below, as uvicorn picks its protocol implementations from a table.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from callhook.store.records import (
    Append,
    Appended,
    ApplyReport,
    Attempt,
    AttemptRow,
    CdrFilter,
    EndpointState,
    Fence,
    Item,
    NewDelivery,
    Outcome,
    StoredEvent,
    TenantValues,
    Update,
)

if TYPE_CHECKING:
    from callhook.config import Settings
    from callhook.deliver.rules import Endpoint
    from callhook.directory import Tenant
    from callhook.events import Event


class StoreError(Exception):
    """The store cannot do what was asked (closed, disk full, corrupt file ...)."""


class WriteRefused(StoreError):
    """The database refused the write itself (a constraint, a value it cannot store, a
    bug in the write), not for want of a connection: the same write fails again."""


class LeaseLost(StoreError):
    """A fenced write refused: this node no longer holds the lease of `partition` at the
    epoch it wrote under (expired, taken by another node). Nothing was written."""

    def __init__(self, fence: Fence) -> None:
        super().__init__(
            f"lease of partition {fence.partition} lost (owner {fence.owner!r}, epoch"
            f" {fence.epoch}): nothing written"
        )
        self.fence = fence


# The backend of each URL scheme: "module:factory". The factory takes the URL and keyword
# settings and returns a `Store`; `upgrade` in the same module runs its migrations.
BACKENDS: dict[str, str] = {
    "sqlite": "callhook.store.sqlite:SQLiteStore",
    "postgresql": "callhook.store.postgres:PostgresStore",
    "postgres": "callhook.store.postgres:PostgresStore",
}


def scheme(url: str) -> str:
    """`sqlite:///x.db` -> `sqlite`; `postgresql+asyncpg://` -> `postgresql`."""
    return url.split(":", 1)[0].split("+", 1)[0].lower()


def _backend(url: str) -> tuple[Any, str]:
    target = BACKENDS.get(scheme(url))
    if target is None:
        known = ", ".join(f"{s}://" for s in BACKENDS)
        raise StoreError(f"unsupported database URL {url!r}: use {known}")
    module, _, name = target.partition(":")
    return importlib.import_module(module), name


def open_store(url: str, **settings: Any) -> Store:
    """The store for `url` (not opened yet: the hub opens it in its lifespan)."""
    module, name = _backend(url)
    store: Store = getattr(module, name)(url, **settings)
    return store


def upgrade(url: str) -> list[int]:
    """Apply pending migrations to the database at `url`; returns the versions applied."""
    module, _ = _backend(url)
    applied: list[int] = module.upgrade(url)
    return applied


# In-transaction hook (the webhook outbox): sees the appended events, `seq` and `event_id`
# set, inside the transaction, and asks for delivery rows that commit or roll back with
# them (publish after commit).
class AppendTx(Protocol):
    """What an in-transaction hook may do inside an append."""

    def first_event_body(self, tenant: str, session: str, key: str, since: float) -> bytes | None:
        """The wire body of the session's first `key` event created at or after `since`."""
        ...

    def add_deliveries(self, rows: Sequence[NewDelivery]) -> None:
        """Rows committed with the events (and returned in `Appended.deliveries`)."""
        ...

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run `undo` if this transaction rolls back: in-memory state the hook changed
        for it must not stay changed (the operation may be retried)."""
        ...


TxHook = Callable[[AppendTx, "list[Event]"], None]
# After-commit consumer: runs on the event loop, in commit order, with what was committed
# (the hub registers them, in order, in app.py: metrics, live fan-out, webhooks).
CommitHook = Callable[[Appended], None]


class EventLog(Protocol):
    """Appends events durably (group commit) and reads them back by (tenant, seq)."""

    tx_hooks: list[TxHook]
    commit_hooks: list[CommitHook]

    async def append(self, batch: Append) -> Appended: ...

    def submit(
        self, batch: Append, future: asyncio.Future[Appended] | None = None
    ) -> asyncio.Future[Appended]: ...

    async def read(
        self,
        tenant: str,
        *,
        since_seq: int = 0,
        limit: int = 100,
        topic: str | None = None,
        key: str | None = None,
        extension: str | None = None,
    ) -> list[bytes]: ...

    async def read_stored(
        self, tenant: str, since: int, keys: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]: ...

    async def last_seq(self, tenant: str) -> int: ...


class CorrelationState(Protocol):
    """Snapshots of open sessions and extension presence (written with each append)."""

    async def load(
        self, tenants: Sequence[str] | None = None
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every tenant's sessions and presence, or only those of `tenants`."""
        ...


class Directory(Protocol):
    """Tenants, extensions, groups, queues, trunks and API keys."""

    async def load(self) -> dict[str, Tenant]: ...
    async def hash_passwords(self, settings: Settings) -> dict[tuple[str, str], str]: ...
    async def apply_config(
        self, settings: Settings, hashes: dict[tuple[str, str], str]
    ) -> ApplyReport: ...
    async def password_hash(self, tenant: str, extension: str | None) -> str: ...

    async def list_tenants(
        self, *, after: str = "", limit: int = 100, search: str | None = None
    ) -> list[dict[str, Any]]: ...
    async def get_tenant(self, name: str) -> dict[str, Any] | None: ...
    async def create_tenant(self, name: str, values: TenantValues) -> Outcome: ...
    async def update_tenant(self, name: str, values: TenantValues) -> Outcome: ...
    async def delete_tenant(self, name: str) -> bool: ...

    async def list_api_keys(
        self, tenant: str, *, after: str = "", limit: int = 100, include_revoked: bool = False
    ) -> list[dict[str, Any]]: ...
    async def create_api_key(self, tenant: str, name: str) -> dict[str, Any] | None: ...
    async def revoke_api_key(self, key_id: str, tenant: str | None = None) -> bool: ...
    async def tenant_of_api_key(self, key: str) -> str | None: ...

    async def list_extensions(
        self,
        tenant: str,
        *,
        after: str = "",
        limit: int = 100,
        group: str | None = None,
        search: str | None = None,
    ) -> list[dict[str, Any]]: ...
    async def get_extension(self, tenant: str, number: str) -> dict[str, Any] | None: ...
    async def create_extension(
        self, tenant: str, number: str, display_name: str, password_hash: str, groups: list[str]
    ) -> Outcome: ...
    async def update_extension(
        self,
        tenant: str,
        number: str,
        *,
        display_name: str | None = None,
        password_hash: str | None = None,
        groups: list[str] | None = None,
    ) -> Outcome: ...
    async def delete_extension(self, tenant: str, number: str) -> bool: ...
    async def groups(self, tenant: str) -> dict[str, list[str]]: ...
    async def set_group(self, tenant: str, group: str, members: list[str]) -> list[str]: ...

    async def list_queues(
        self, tenant: str, *, after: str = "", limit: int = 100, member: str | None = None
    ) -> list[dict[str, Any]]: ...
    async def get_queue(self, tenant: str, number: str) -> dict[str, Any] | None: ...
    async def save_queue(
        self,
        tenant: str,
        number: str,
        members: list[str] | None,
        managers: list[str] | None,
        *,
        create: bool,
    ) -> Outcome: ...
    async def delete_queue(self, tenant: str, number: str) -> bool: ...

    async def list_trunks(
        self, tenant: str, *, after: str = "", limit: int = 100
    ) -> list[dict[str, Any]]: ...
    async def get_trunk(self, tenant: str, name: str) -> dict[str, Any] | None: ...
    async def create_trunk(self, tenant: str, name: str) -> Outcome: ...
    async def delete_trunk(self, tenant: str, name: str) -> bool: ...


class Queries(Protocol):
    """Read-side queries: CDRs and phones seen."""

    async def cdrs(self, tenant: str, f: CdrFilter) -> list[tuple[int, bytes]]: ...
    async def devices(self, tenant: str) -> list[dict[str, Any]]: ...


# Given the config-declared endpoints now stored (by (tenant, config key)), says what to
# delete, insert (with its config key) and update; run inside the write transaction.
EndpointPlan = Callable[
    ["dict[tuple[str, str], Endpoint]"],
    "tuple[list[str], list[tuple[Endpoint, str]], list[Endpoint]]",
]


class Deliveries(Protocol):
    """Webhook and Call Events endpoints, the outbox, the attempt log."""

    async def load_endpoints(self) -> list[Endpoint]: ...
    async def insert_endpoint(self, ep: Endpoint) -> None: ...
    async def update_endpoint(self, ep: Endpoint, *, hold_at: float | None = None) -> None:
        """Write back `ep`; with `hold_at`, its pending deliveries become held."""
        ...

    async def delete_endpoint(self, endpoint_id: str) -> None: ...
    async def sync_config_endpoints(self, plan: EndpointPlan) -> list[str]: ...
    async def set_endpoint_state(self, state: EndpointState, *, hold: bool, now: float) -> None: ...

    async def pending_endpoints(self) -> list[str]: ...
    async def load_pending(
        self, endpoint_id: str, *, after_seq: int = 0, limit: int = 10_000
    ) -> list[Item]: ...
    async def load_items(self, delivery_ids: list[str]) -> list[Item]: ...
    async def record(self, updates: list[Update], attempts: list[Attempt]) -> None: ...

    async def list_deliveries(
        self,
        endpoint_id: str,
        *,
        status: str | None = None,
        since: float | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]: ...
    async def get_delivery(self, tenant: str, delivery_id: str) -> dict[str, Any] | None: ...
    async def requeue_one(self, tenant: str, delivery_id: str, now: float) -> str | None: ...
    async def requeue_range(
        self,
        endpoint_id: str,
        *,
        since: float,
        until: float,
        statuses: Sequence[str],
        now: float,
    ) -> int: ...
    async def prune(self, before: float, limit: int = 5000) -> int: ...
    async def recent_health(
        self, tenant: str, since: float, max_attempts: int
    ) -> tuple[list[tuple[str, str, int]], list[AttemptRow]]:
        """(endpoint, status, count) of deliveries created since `since`, and their
        attempts newest first (at most `max_attempts`)."""
        ...


class Maintenance(Protocol):
    """Retention: old events, and the data of deleted tenants, in small batches."""

    async def prune_events(self, cutoff: float, limit: int) -> int: ...
    async def pending_purges(self) -> list[str]: ...
    async def cancel_purges(self, names: list[str]) -> None: ...
    async def purge_batch(self, tenant: str, limit: int) -> int: ...


class Store(Protocol):
    """One backend: its repositories and its lifecycle."""

    log: EventLog
    state: CorrelationState
    directory: Directory
    queries: Queries
    deliveries: Deliveries
    maintenance: Maintenance

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise unless the database answers (readiness)."""
        ...


__all__ = [
    "BACKENDS",
    "Append",
    "AppendTx",
    "Appended",
    "ApplyReport",
    "Attempt",
    "CdrFilter",
    "CommitHook",
    "CorrelationState",
    "Deliveries",
    "Directory",
    "EventLog",
    "Fence",
    "Item",
    "LeaseLost",
    "Maintenance",
    "Queries",
    "Store",
    "StoreError",
    "TenantValues",
    "TxHook",
    "Update",
    "open_store",
    "upgrade",
]
