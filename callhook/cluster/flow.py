"""A cluster node's flow: intake to the inbox, owner processing of the partitions it holds.

The second composition of callhook.flow (the Hub picks it for a Redis bus): reports reach
the inbox from any node (`InboxIntake`); the `Leases` say which partitions this node
owns, and its `Owner` correlates their inbox; the `Listener` wakes the owner and the
callers waiting for a reply; `ClusterState` answers presence and calls for any tenant.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from callhook.cluster.intake import InboxIntake, Replies
from callhook.cluster.leases import Leases
from callhook.cluster.notify import Listener
from callhook.cluster.owner import Owner
from callhook.cluster.state import ClusterState
from callhook.correlate import Correlator
from callhook.directory import Tenant
from callhook.flow import StateView
from callhook.pipeline import Intake
from callhook.store.postgres.inbox import PgInbox
from callhook.store.sql.store import SqlStore

# Seconds a REST call waits for the owner's commit of its report before `504`.
REPLY_WAIT = 10.0


class ClusterFlow:
    """callhook.flow.Flow of a cluster node."""

    def __init__(
        self,
        url: str,
        store: SqlStore,
        leases: Leases,
        correlator: Correlator,
        blank: Callable[[], Correlator],
        tenants: dict[str, Tenant],
        reload_directory: Callable[[], Awaitable[None]],
        *,
        tick_interval: float,
        correlation_failed: Callable[[str], None],
        timeout: int,
        owned: Callable[[frozenset[int]], None] = lambda partitions: None,
    ) -> None:
        """`owned(partitions)`: told the partitions this node owns after each change (the
        bus reads the others' streams only)."""
        self.inbox = PgInbox(url, timeout=timeout)
        self.replies = Replies(self.inbox)
        self.intake: Intake = InboxIntake(self.inbox, self.replies, REPLY_WAIT)
        self.owner = Owner(
            leases.node_id,
            self.inbox,
            store.log,
            store.state,
            correlator,
            tenants,
            reload_directory,
            tick_interval=tick_interval,
            correlation_failed=correlation_failed,
        )
        self.state: StateView = ClusterState(self.owner, store.state, blank)
        self.leases = leases
        self._owned = owned
        leases.on_acquired = self._acquired
        leases.on_lost = self._lost
        self.listener = Listener(url, self.owner.wake, self.replies.notified, timeout)
        self._task: asyncio.Task[None] | None = None

    async def _acquired(self, partition: int, epoch: int) -> None:
        await self.owner.acquired(partition, epoch)
        self._owning_changed()

    async def _lost(self, partition: int) -> None:
        await self.owner.lost(partition)
        self._owning_changed()

    def _owning_changed(self) -> None:
        owned = frozenset(self.owner.owned)
        self.listener.follow(owned)  # the entries of the partitions taken wake this node now
        self._owned(owned)

    async def start(self) -> None:
        await self.inbox.open()
        await self.listener.start()

    async def run(self) -> None:
        # The hub starts the leases (and stops them after halt(): on_lost for each).
        self._task = asyncio.create_task(self.owner.run(), name="inbox-owner")

    async def halt(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def close(self) -> None:
        await self.listener.stop()
        await self.replies.stop()
        await self.inbox.close()
