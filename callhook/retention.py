"""Retention: prune old events; remove a deleted tenant's data.

Everything runs through the single writer in small batches, one batch per write, so phone
ingest waiting in the writer's queue gets its turn between batches and is never stalled
behind a long delete. CDRs are kept. The webhook delivery log is
pruned by the delivery service itself (`deliveries_days`, callhook/deliver).

The newest event of each tenant is never pruned: the writer derives the next `seq` from
`MAX(seq)` after a restart, and `seq` must keep increasing (it is the subscribers' resume point).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from callhook.config import RetentionConfig
from callhook.store.sqlite import SQLiteStore, StoreError, WriterState

log = logging.getLogger("callhook.retention")

DAY = 86_400.0
BATCH = 1000
# A deleted tenant's rows, table by table (events has no rowid: keyed by seq).
TENANT_TABLES: tuple[tuple[str, str], ...] = (
    ("events", "seq"),
    ("cdrs", "rowid"),
    ("sessions", "rowid"),
    ("presence", "rowid"),
    ("devices", "rowid"),
)


def prune_events(conn: sqlite3.Connection, cutoff: float, limit: int) -> int:
    """Delete up to `limit` events created before `cutoff`, never a tenant's newest."""
    doomed = conn.execute(
        "SELECT tenant, seq FROM events AS e WHERE created_at < ?"
        " AND seq < (SELECT MAX(seq) FROM events WHERE tenant = e.tenant)"
        " ORDER BY created_at LIMIT ?",
        (cutoff, limit),
    ).fetchall()
    conn.executemany("DELETE FROM events WHERE tenant = ? AND seq = ?", doomed)
    return len(doomed)


def purge_batch(conn: sqlite3.Connection, tenant: str, limit: int) -> int:
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


class Retention:
    """Runs pruning periodically and tenant purges on demand, from the hub's lifespan."""

    def __init__(
        self,
        store: SQLiteStore,
        settings: RetentionConfig,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        batch: int = BATCH,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.batch = batch
        self.purging: set[str] = set()  # tenants whose data is being removed
        self._purges: set[asyncio.Task[None]] = set()
        self.pruned = Counter(
            "callhook_retention_pruned",
            "Rows removed by retention and tenant deletion",
            ["table"],
            registry=registry,
        )

    @property
    def interval(self) -> float:
        """Hourly, or a tenth of the retention age if shorter (at least once a second)."""
        return max(1.0, min(3600.0, self.settings.events_days * DAY / 10 or 3600.0))

    async def run(self) -> None:
        """Prune forever (cancel to stop); the first pass a moment after start."""
        await asyncio.sleep(min(self.interval, 5.0))
        while True:
            try:
                await self.prune()
            except Exception:  # the next pass may succeed; never let the loop die
                log.exception("retention pass failed")
            await asyncio.sleep(self.interval)

    async def prune(self) -> dict[str, int]:
        """One full pass; returns rows removed per table."""
        now = self.clock()
        done: dict[str, int] = {}
        if self.settings.events_days:
            cutoff = now - self.settings.events_days * DAY
            done["events"] = await self._drain(lambda c: prune_events(c, cutoff, self.batch))
        for table, n in done.items():
            if n:
                self.pruned.labels(table).inc(n)
                log.info("retention pruned", extra={"table": table, "rows": n})
        return done

    async def _drain(self, step: Callable[[sqlite3.Connection], int]) -> int:
        total = 0
        while True:
            n = await self.store.write(lambda c, _s: step(c))
            total += n
            if n < self.batch:
                return total
            await asyncio.sleep(0)  # let queued ingest writes in between batches

    # tenant purges -------------------------------------------------------------------
    async def resume(self, existing: set[str]) -> None:
        """Restart purges a previous run left unfinished; a tenant that exists again (the
        config file brought it back) keeps what is left of its data."""
        pending: list[str] = await self.store.read(
            lambda c: [r[0] for r in c.execute("SELECT name FROM tenant_purges")]
        )
        back = [(name,) for name in pending if name in existing]
        if back:
            await self.store.write(
                lambda c, _s: c.executemany("DELETE FROM tenant_purges WHERE name=?", back)
            )
        for name in pending:
            if name not in existing:
                self.purge_tenant(name)

    def purge_tenant(self, tenant: str) -> None:
        """Remove a deleted tenant's events, CDRs, sessions, presence and devices, in the
        background. The caller has deleted the tenant row and recorded it in tenant_purges."""
        if tenant in self.purging:
            return
        self.purging.add(tenant)
        task = asyncio.create_task(self._purge(tenant), name=f"purge-{tenant}")
        self._purges.add(task)
        task.add_done_callback(self._purges.discard)

    async def _purge(self, tenant: str) -> None:
        total = 0
        try:
            while n := await self.store.write(self._purge_step(tenant)):
                total += n
                await asyncio.sleep(0)  # let queued ingest writes in between batches
            self.pruned.labels("tenant").inc(total)
            log.info("tenant data removed", extra={"tenant": tenant, "rows": total})
        except StoreError as exc:  # the store is closing; resumed at the next start
            log.warning("tenant purge stopped", extra={"tenant": tenant, "error": str(exc)})
        except Exception:
            log.exception("tenant purge failed", extra={"tenant": tenant})
        finally:
            self.purging.discard(tenant)

    def _purge_step(self, tenant: str) -> Callable[[sqlite3.Connection, WriterState], int]:
        return lambda conn, _state: purge_batch(conn, tenant, self.batch)

    async def stop(self) -> None:
        for task in list(self._purges):
            task.cancel()
        for task in list(self._purges):
            with contextlib.suppress(asyncio.CancelledError):
                await task
