"""Retention: prune old events; remove a deleted tenant's data.

Everything runs through the store (`store.Maintenance`) in small batches, one batch per
transaction, so phone ingest waiting for the writer gets its turn between batches and is
never stalled behind a long delete. CDRs are kept. The webhook delivery log is pruned by
the delivery service itself (`deliveries_days`, callhook/deliver).

The newest event of each tenant is never pruned: the writer derives the next `seq` from
`MAX(seq)` after a restart, and `seq`, the resume point of subscribers, must keep
increasing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter

from callhook.config import RetentionConfig
from callhook.store import Maintenance, StoreError

log = logging.getLogger("callhook.retention")

DAY = 86_400.0
BATCH = 1000


class Retention:
    """Runs pruning periodically and tenant purges on demand, from the hub's lifespan."""

    def __init__(
        self,
        store: Maintenance,
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
            done["events"] = await self._drain(lambda: self.store.prune_events(cutoff, self.batch))
        for table, n in done.items():
            if n:
                self.pruned.labels(table).inc(n)
                log.info("retention pruned", extra={"table": table, "rows": n})
        return done

    async def _drain(self, step: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while True:
            n = await step()
            total += n
            if n < self.batch:
                return total
            await asyncio.sleep(0)  # let queued ingest writes in between batches

    # tenant purges -------------------------------------------------------------------
    async def resume(self, existing: set[str]) -> None:
        """Restart purges a previous run left unfinished; a tenant that exists again (the
        config file brought it back) keeps what is left of its data."""
        pending = await self.store.pending_purges()
        back = [name for name in pending if name in existing]
        if back:
            await self.store.cancel_purges(back)
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
            while n := await self.store.purge_batch(tenant, self.batch):
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

    async def stop(self) -> None:
        for task in list(self._purges):
            task.cancel()
        for task in list(self._purges):
            with contextlib.suppress(asyncio.CancelledError):
                await task
