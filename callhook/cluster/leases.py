"""Which node owns which partition: leases in PostgreSQL, renewed every second.

Every node of a cluster runs one `Leases`. Each round (every `renew` seconds) it writes
its heartbeat and renews the leases it holds in one statement, hands back what it holds
above its fair share when another node is below its own (so that a node that joins gets
work), and takes free or expired partitions up to its share (more only when nobody else
needs them). The shares differ by one at most: with the nodes alive sorted by id, the
first `partitions % nodes` get one more than `partitions // nodes`, so every node works
out every node's share alike. A partition taken gets an
epoch one higher than before; every write its owner makes for it carries a `Fence` of
that epoch, checked in the same transaction, so a node that lost a lease (paused, cut
off, too slow to renew) can never write under it again. A node that has not renewed a
lease for `ttl` seconds stops processing it by itself, before the database lets another
node take it (its local deadline starts when the renewal was sent, before the server's).

What owning means is someone else's: `on_acquired(partition, epoch)` starts processing
it (restore, then read on), `on_lost(partition)` stops it. They run one at a time, in
the order the leases changed, on a task of their own: a slow start (restoring a busy
partition) never delays the renewals. A partition is handed back only after its
`on_lost` returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from callhook.cluster.partitions import PARTITIONS
from callhook.store import Fence, LeaseLost, StoreError
from callhook.store.postgres.leases import LeaseRow, LeaseTable

log = logging.getLogger("callhook.cluster")

Acquired = Callable[[int, int], Awaitable[None]]
Lost = Callable[[int], Awaitable[None]]


class Leases:
    """This node's partition leases (one per node: `start()` and `stop()` in its lifespan)."""

    def __init__(
        self,
        table: LeaseTable,
        node_id: str,
        *,
        ttl: float = 5.0,
        renew: float = 1.0,
        partitions: int = PARTITIONS,
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.table = table
        self.node_id = node_id
        self.ttl = ttl
        self.renew = renew
        self.partitions = partitions
        self.clock = clock
        self.on_acquired: Acquired | None = None
        self.on_lost: Lost | None = None
        self.nodes_alive = 0  # as of the last round
        self.target = partitions  # this node's fair share, as of the last round
        self._held: dict[int, int] = {}  # partition -> epoch
        self._until: dict[int, float] = {}  # partition -> local deadline (clock)
        # (partition, epoch, acquired, hand back after on_lost), for the callbacks' task
        self._changes: asyncio.Queue[tuple[int, int, bool, bool]] = asyncio.Queue()
        self._callbacks: asyncio.Task[None] | None = None
        self._offset = zlib.crc32(node_id.encode()) % partitions
        self._task: asyncio.Task[None] | None = None
        r = registry if registry is not None else CollectorRegistry()
        Gauge(
            "callhook_partitions_owned", "Partition leases this node holds", registry=r
        ).set_function(lambda: len(self._held))
        self.m_changes = Counter(
            "callhook_partition_changes",
            "Partition leases taken and lost by this node",
            ["change"],
            registry=r,
        )
        self.m_failed = Counter(
            "callhook_lease_rounds_failed",
            "Lease renewal rounds that failed (PostgreSQL unreachable or too slow)",
            registry=r,
        )

    # what the owner processor asks -----------------------------------------------------
    def owned(self) -> dict[int, int]:
        """partition -> epoch, for the leases held now."""
        return dict(self._held)

    def fence(self, partition: int) -> Fence:
        """The fence of a write for `partition`; LeaseLost if it is not held."""
        epoch = self._held.get(partition)
        if epoch is None:
            raise LeaseLost(Fence(partition, self.node_id, 0))
        return Fence(partition, self.node_id, epoch)

    def share(self) -> int:
        """How many partitions this node should hold, with the nodes alive last seen."""
        return self.target

    async def status(self) -> tuple[list[LeaseRow], list[tuple[str, float]]]:
        """Every partition's lease and the nodes alive, as the database has them."""
        return await self.table.status(self.ttl)

    async def settled(self) -> None:
        """Wait until the callbacks of every change so far have returned."""
        await self._changes.join()

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Take a first share (so a node is useful once started), then keep going."""
        try:
            await self.round()
        except StoreError as exc:
            log.warning("partition leases: %s (trying again every %.1f s)", exc, self.renew)
        self._task = asyncio.create_task(self._run(), name="partition-leases")

    async def stop(self) -> None:
        """Stop processing every partition, then hand the leases back at once (the other
        nodes take them on their next round, not a lease time later)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for p in sorted(self._held):
            self._lose(p, "node stopping")
        try:
            await asyncio.wait_for(self.settled(), self.ttl)
        except TimeoutError:
            log.warning("partitions still stopping after %g s: their leases expire", self.ttl)
        else:
            try:
                await self.table.leave(self.node_id)
            except StoreError as exc:  # they expire by themselves
                log.warning("partition leases not handed back: %s", exc)
        if self._callbacks is not None:
            self._callbacks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._callbacks
            self._callbacks = None
        await self.table.close()

    async def _run(self) -> None:
        next_at = self.clock()
        while True:
            next_at += self.renew
            try:
                await self._bounded(self.round(), next_at)
            except (StoreError, TimeoutError) as exc:
                self.m_failed.inc()
                log.warning("partition leases: %s", exc or "no answer in time")
            except Exception:
                self.m_failed.inc()
                log.exception("partition leases round failed")
            self._expire()
            delay = next_at - self.clock()
            if delay < 0:  # late (a loaded machine): no burst of rounds to catch up
                next_at = self.clock()
            await asyncio.sleep(max(0.0, delay))

    async def _bounded(self, round_: Awaitable[None], next_at: float) -> None:
        """Run a round, giving up leases whose deadline passes while it waits."""
        task = asyncio.ensure_future(round_)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.renew / 4)
                if done:
                    task.result()
                    return
                self._expire()
                if self.clock() > next_at + self.ttl:  # hung: drop the connection
                    task.cancel()
                    await self.table.close()
                    raise TimeoutError
        finally:
            if not task.done():
                task.cancel()

    # one round ---------------------------------------------------------------------------
    async def round(self) -> None:
        """Heartbeat and renew; hand back above the share; take up to the share."""
        sent = self.clock()
        beat = await self.table.beat(self.node_id, dict(self._held), self.ttl)
        for p in sorted(self._held):
            if p in beat.renewed:
                self._until[p] = sent + self.ttl
            else:
                self._lose(p, "lease not renewed (expired or taken)")
        shares = fair_shares([self.node_id, *beat.others], self.partitions)
        self.nodes_alive, self.target = len(shares), shares[self.node_id]
        # what the others still need, and what nobody holds
        needed = sum(max(0, shares[n] - beat.held_by.get(n, 0)) for n in beat.others)
        free = self.partitions - len(self._held) - sum(beat.held_by.values())
        extra = min(len(self._held) - self.target, needed)
        if extra > 0:  # (and take nothing in the same round)
            for p in sorted(self._held, key=self._preference)[-extra:]:
                why = f"handed back: above the fair share of {self.target}"
                self._lose(p, why, hand_back=True)
            return
        # up to the share; beyond it only what the others will not take
        want = min(free, max(self.target - len(self._held), free - needed))
        if want > 0:
            sent = self.clock()
            got = await self.table.acquire(
                self.node_id,
                want,
                self.ttl,
                offset=self._offset,
                partitions=self.partitions,
            )
            for p, epoch in sorted(got.items()):
                self._held[p] = epoch
                self._until[p] = sent + self.ttl
                log.info("partition %d acquired (epoch %d)", p, epoch)
                self._change(p, epoch, acquired=True)

    def _preference(self, partition: int) -> int:
        """Kept first: this node's own range of partitions (from its offset)."""
        return (partition - self._offset) % self.partitions

    def _lose(self, partition: int, why: str, *, hand_back: bool = False) -> None:
        epoch = self._held.pop(partition, None)
        if epoch is None:
            return
        self._until.pop(partition, None)
        log.info("partition %d lost: %s", partition, why)
        self._change(partition, epoch, acquired=False, hand_back=hand_back)

    def _expire(self) -> None:
        """Stop processing what could not be renewed in time (the database may hand it to
        another node any moment now)."""
        now = self.clock()
        for p in [p for p, until in self._until.items() if until <= now]:
            self._lose(p, f"not renewed for {self.ttl:g} s")

    # the owner processor's callbacks, in order, on a task of their own --------------------
    def _change(
        self, partition: int, epoch: int, *, acquired: bool, hand_back: bool = False
    ) -> None:
        self.m_changes.labels("acquired" if acquired else "lost").inc()
        self._changes.put_nowait((partition, epoch, acquired, hand_back))
        if self._callbacks is None or self._callbacks.done():
            self._callbacks = asyncio.create_task(self._call_back(), name="partition-callbacks")

    async def _call_back(self) -> None:
        while True:
            partition, epoch, acquired, hand_back = await self._changes.get()
            try:
                if acquired:
                    await self._started(partition, epoch)
                else:
                    await self._stopped(partition, epoch, hand_back)
            finally:
                self._changes.task_done()

    async def _started(self, partition: int, epoch: int) -> None:
        if self.on_acquired is None:
            return
        try:
            await self.on_acquired(partition, epoch)
        except Exception:
            log.exception("starting partition %d failed: handing it back", partition)
            if self._held.get(partition) == epoch:
                self._lose(partition, "could not start it", hand_back=True)

    async def _stopped(self, partition: int, epoch: int, hand_back: bool) -> None:
        if self.on_lost is not None:
            try:
                await self.on_lost(partition)
            except Exception:
                log.exception("stopping partition %d failed", partition)
        if hand_back:  # only now: it is not processed here any more
            try:
                await self.table.release(self.node_id, {partition: epoch})
            except StoreError as exc:  # it expires by itself
                log.warning("partition %d not handed back: %s", partition, exc)


def fair_shares(alive: list[str], partitions: int = PARTITIONS) -> dict[str, int]:
    """node -> partitions it should hold: `partitions // n` each, one more for the first
    `partitions % n` node ids in sorted order (the same answer on every node)."""
    nodes = sorted(set(alive))
    base, rest = divmod(partitions, len(nodes))
    return {n: base + (1 if i < rest else 0) for i, n in enumerate(nodes)}
