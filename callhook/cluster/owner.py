"""The owner of a partition: reads its inbox in order, correlates, commits fenced.

One task per node runs every pass for all the partitions the node holds, one pass at a
time: read the entries not consumed yet (id order), correlate them with the node's
`Correlator` (which holds the state of those partitions' tenants only), run its timers
when due (ring timeouts, ghost calls), and commit in ONE transaction on the store's
writer: the lease fences of the partitions touched, the events (per-tenant gap-free
`seq`), the session and presence snapshots, devices, webhook outbox rows, and the DELETE
of the entries consumed (callhook/store/postgres/inbox.py). Committed events then go to
the bus as on one node (the event log's commit hooks).

A pass that fails to commit (a lease lost, PostgreSQL away) has advanced the correlator
for nothing: the state of every partition held is dropped and read again from
PostgreSQL, and the entries are read again (they were not consumed). A partition taken
(`acquired`) is restored from the snapshots its previous owner committed; a partition
lost is forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from callhook.cluster.partitions import partition_of
from callhook.correlate import Correlator
from callhook.directory import Tenant
from callhook.events import Event
from callhook.ingest.model import ParsedRequest, PhoneEvent
from callhook.pipeline import DeviceCache, mark
from callhook.store import Append, Appended, CorrelationState, Fence, WriteRefused
from callhook.store.postgres.inbox import Entry, PgInbox, consume
from callhook.store.records import DeviceSeen
from callhook.store.sql.log import SqlEventLog

log = logging.getLogger("callhook.cluster")

BATCH = 2000  # entries read per pass
# Seconds between reads of the inbox when no notification came. Every entry's commit
# notifies its partition's owner, and the listener wakes the owner when it (re)connects
# and when it starts listening to a partition: this only bounds the wait for an entry
# whose notification was missed anyway. Timer passes in between do not read the inbox.
POLL = 5.0
RETRY = 0.5  # seconds after a pass that failed to commit
REFUSALS = 3  # one-entry passes refused in a row before that entry is set aside
PRUNE_EVERY = 300.0  # seconds between prunes of old dedupe keys and replies
# The loop's timers may fire a little early (millisecond resolution): a pass woken for the
# timers runs them, instead of finding them not quite due and waking again at once.
EARLY = 0.005


class Owner:
    """Correlates the inbox of the partitions this node holds (one pass at a time)."""

    def __init__(
        self,
        node_id: str,
        inbox: PgInbox,
        log: SqlEventLog,
        state: CorrelationState,
        correlator: Correlator,
        tenants: dict[str, Tenant],
        reload_directory: Callable[[], Awaitable[None]],
        *,
        tick_interval: float = 1.0,
        correlation_failed: Callable[[str], None] = lambda tenant: None,
    ) -> None:
        self.node_id = node_id
        self.inbox = inbox
        self.log = log
        self.state = state
        self.correlator = correlator
        self.tenants = tenants
        self._reload_directory = reload_directory
        self._tick_interval = tick_interval
        self._correlation_failed = correlation_failed
        self.owned: dict[int, int] = {}  # partition -> lease epoch, the ones processed
        self._stale: set[int] = set()  # held, state to read from PostgreSQL before a pass
        self.devices = DeviceCache()
        self._lock = asyncio.Lock()  # passes, acquisitions and losses take turns
        self._wake = asyncio.Event()
        # After a commit the database refused (WriteRefused: the data, not the connection):
        # passes left that take one inbox entry each, to find the entry that causes it,
        # and how many times in a row the one-entry pass was refused.
        self._careful = 0
        self._refused = 0
        self._in_flight: list[Entry] = []  # the inbox entries of the pass in progress
        self._next_tick = 0.0
        self._next_prune = time.monotonic() + PRUNE_EVERY
        self.passes = 0
        self.failures = 0
        self.set_aside = 0  # entries that could not be processed (logged whole)

    # leases ------------------------------------------------------------------------------
    async def acquired(self, partition: int, epoch: int) -> None:
        """This node holds `partition` now (at `epoch`): its tenants' calls and presence
        are restored from what the previous owner committed, then its inbox processed."""
        async with self._lock:
            self._forget({partition})
            self._stale.add(partition)
            self.owned[partition] = epoch
        log.info("partition %d taken (epoch %d)", partition, epoch)
        self.wake()

    async def lost(self, partition: int) -> None:
        """This node no longer holds `partition`: stop processing it (after the pass in
        flight, whose commit its fence refuses) and forget its tenants' state."""
        async with self._lock:
            if self.owned.pop(partition, None) is not None:
                log.info("partition %d given up", partition)
            self._stale.discard(partition)
            self._forget({partition})

    def live(self, tenant: str) -> bool:
        """Whether this node's correlator holds `tenant`'s current state."""
        p = partition_of(tenant)
        return p in self.owned and p not in self._stale

    def wake(self, partition: int = -1) -> None:
        """New entries in `partition` (-1: maybe any): run a pass now."""
        if partition < 0 or partition in self.owned:
            self._wake.set()

    # the loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        """Passes, woken by notifications, by the poll interval, and by timers due."""
        next_read = time.monotonic() + POLL
        while True:
            # Timers are due only with partitions held: a node holding none would see its
            # first tick due forever and pass without pause (a core spent on nothing).
            due = self._next_tick if self.owned else math.inf
            woken = False
            with contextlib.suppress(asyncio.TimeoutError):
                timeout = max(0.0, min(next_read, due) - time.monotonic())
                await asyncio.wait_for(self._wake.wait(), timeout)
                woken = True
            self._wake.clear()
            read = woken or time.monotonic() >= next_read
            if read:
                next_read = time.monotonic() + POLL
            try:
                await self._turn(read)
            except Exception as exc:  # this task must outlive any failure: nothing else
                # processes the partitions this node holds
                self.failures += 1
                log.error("inbox pass failed (state restored, entries read again): %s", exc)
                await self._recover()
                await asyncio.sleep(RETRY)
                self._wake.set()  # its entries are read again now, not at the next poll

    async def _turn(self, read: bool = True) -> None:
        """A pass (or the handling of a refused one), then the inbox's prune when due;
        `read`: whether the pass reads the inbox (or only runs the timers due)."""
        try:
            async with self._lock:
                more = await self._pass(read)
        except WriteRefused as exc:
            await self._refused_pass(exc)
            return
        if more:
            self._wake.set()
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + PRUNE_EVERY
            try:
                await self.inbox.prune()
            except Exception as exc:  # old keys and replies wait for the next prune
                log.warning("pruning the inbox's old dedupe keys and replies failed: %s", exc)

    async def _pass(self, read: bool = True) -> bool:
        """One pass (`read`: of the inbox and the timers due; else of the timers only);
        True when more entries may be waiting."""
        owned = dict(self.owned)
        if not owned:
            return False
        if self._stale:  # taken, or a pass failed: continue from what is committed
            stale = set(self._stale)
            self._forget(stale)
            await self._restore(stale)
            self._stale -= stale
        entries: list[Entry] = []
        if read:
            entries = await self.inbox.pending(sorted(owned), 1 if self._careful else BATCH)
            if self._careful and not entries:  # the rest went with a partition given up
                self._one_by_one(self._careful)
        self._in_flight = entries
        if any(e.tenant not in self.tenants for e in entries):
            await self._reload_directory()  # created on another node a moment ago
        batch = Append([])
        touched = {e.partition for e in entries}
        replies: list[tuple[int, int, str]] = []  # entry id, part, kind
        correlated: list[tuple[Entry, int]] = []  # and its part of the batch
        for e in entries:
            tenant = self.tenants.get(e.tenant)
            if tenant is None:  # deleted since: its reports go with it
                log.warning("inbox entry of unknown tenant %r dropped", e.tenant)
                continue
            try:
                events, device, found = self._correlate(tenant, e)
            except Exception as exc:  # no I/O in there: it would fail alike on every try
                self._set_aside(e, exc)
                batch.parts.append((len(batch.events), len(batch.events), -1))
                if e.kind in ("publish", "end_call"):
                    replies.append((e.id, len(batch.parts) - 1, "failed"))
                continue
            part = batch.add_part(events, device)
            correlated.append((e, part))
            if e.kind in ("publish", "end_call"):
                replies.append((e.id, part, "" if found else "missing"))
        now = time.monotonic()
        if now >= self._next_tick - EARLY:
            self._next_tick = now + self._tick_interval
            ticked = self.correlator.tick()
            if ticked:
                batch.events.extend(ticked)
                batch.parts.append((len(batch.events) - len(ticked), len(batch.events), -1))
        changes = self.correlator.drain_changes()
        batch.sessions, batch.presence = changes.sessions, changes.presence
        touched |= {partition_of(e.tenant) for e in batch.events}
        touched |= {partition_of(t) for t, _, _ in batch.sessions}
        touched |= {partition_of(t) for t, _, _ in batch.presence}
        if not (entries or batch.events or batch.sessions or batch.presence):
            return False
        batch.fences = [Fence(p, self.node_id, owned[p]) for p in sorted(touched) if p in owned]
        ids = [e.id for e in entries]
        appended = await self._commit(batch, ids, replies)
        self.passes += 1
        self._forget_unstored_devices(batch, appended)
        # A part the database refused (its events logged, not stored; the rest of the
        # pass was): the entry is set aside.
        for e, part in correlated:
            if _refused(appended, part):
                self._set_aside(e, WriteRefused("the database refused its events (logged)"))
        if self._careful:
            if read:
                self._one_by_one(len(entries))
            return True
        return len(entries) == BATCH

    def _one_by_one(self, done: int) -> None:
        """`done` entries processed (or set aside) one at a time since a refused pass."""
        self._refused = 0
        self._careful = max(0, self._careful - done)
        if not self._careful:
            log.info("inbox entries processed in whole passes again")

    async def _refused_pass(self, exc: WriteRefused) -> None:
        """The database refused a pass's commit because of what it wrote: the same pass
        would be refused forever, holding back every later report of its partitions. Its
        entries are processed one per pass, and an entry refused alone REFUSALS times in a
        row is set aside (consumed, logged whole), as one that cannot be correlated."""
        self.failures += 1
        entries = self._in_flight
        await self._recover()
        if not self._careful or len(entries) != 1:
            log.error(
                "inbox pass refused by the database (%s): its %d entries are processed one"
                " at a time to find the one that causes it",
                exc, len(entries),
            )  # fmt: skip
            self._careful = max(1, len(entries))
            self._wake.set()
            return
        self._refused += 1
        if self._refused < REFUSALS:
            await asyncio.sleep(RETRY)
            self._wake.set()  # the entry alone, again
            return
        (e,) = entries
        async with self._lock:
            epoch = self.owned.get(e.partition)
            if epoch is None:  # no longer ours: its new owner will find it
                return
            batch = Append([], fences=[Fence(e.partition, self.node_id, epoch)])
            batch.parts.append((0, 0, -1))
            replies = [(e.id, 0, "failed")] if e.kind in ("publish", "end_call") else []
            await self._commit(batch, [e.id], replies)
        self._set_aside(e, exc)
        self._one_by_one(1)
        self._wake.set()

    def _set_aside(self, e: Entry, exc: Exception) -> None:
        """An entry that cannot be processed (written by another version, or a bug): it
        is consumed with the pass instead of holding every later report of its partition
        back, and logged whole, so that nothing of it is lost."""
        self.set_aside += 1
        body = e.raw.decode(errors="replace") if e.body is None else orjson.dumps(e.body).decode()
        log.error(
            "inbox entry set aside: id %d, tenant %r, kind %r, received at %.3f (%s: %s);"
            " its body: %s",
            e.id, e.tenant, e.kind, e.received_at, type(exc).__name__, exc, body,
        )  # fmt: skip

    def _correlate(self, tenant: Tenant, e: Entry) -> tuple[list[Event], DeviceSeen | None, bool]:
        """(events, device row to write, found) of one entry."""
        b = e.body
        if b is None:
            raise ValueError("its body is not a JSON object")
        if e.kind == "phone":
            parsed = ParsedRequest(
                token=None,
                event_name=b.get("event_name"),
                event=b.get("event"),
                variables=b.get("variables") or {},
                pairs=b.get("pairs") or {},
                vendor=b.get("vendor") or "grandstream",
                hints=tuple(b.get("hints") or ()),
            )
            pe = PhoneEvent(
                tenant=tenant.name,
                event=parsed.event,
                variables=parsed.variables,
                pairs=parsed.pairs,
                event_name=parsed.event_name,
                source_ip=b.get("source_ip") or "",
                received_at=e.received_at,
                vendor=parsed.vendor,
                hints=parsed.hints,
            )
            try:
                events = self.correlator.feed(pe)
            except Exception as exc:  # a bug: the phone was not wrong, its report is kept
                events = [self.correlator.raw_report(pe, f"{type(exc).__name__}: {exc}")]
                self._correlation_failed(tenant.name)
                log.exception("correlation failed; the report is stored raw: %s", b)
            marks = b.get("marks")
            mark(events, (marks[0], marks[1]) if marks else None)
            return events, self.devices.seen(tenant, pe), True
        if e.kind == "publish":
            ev = Event(
                tenant=tenant.name,
                key=b["key"],
                body=b["body"],
                extensions=tuple(b.get("extensions") or ()),
                queue=b.get("queue"),
                session_id=b.get("session_id"),
                created_at=float(b.get("created_at") or e.received_at),
            )
            return self.correlator.publish(ev), None, True
        if e.kind == "end_call":
            ended = self.correlator.end_call(tenant.name, str(b.get("session_id")))
            return ended or [], None, ended is not None
        log.warning("inbox entry of unknown kind %r dropped", e.kind)
        return [], None, True

    async def _commit(
        self, batch: Append, ids: list[int], replies: list[tuple[int, int, str]]
    ) -> Appended:
        def write(conn: Any, st: Any) -> Appended:
            appended = self.log.append_in(conn, st, batch)
            consume(conn, ids, [(i, _reply(appended, part, why)) for i, part, why in replies])
            return appended

        future: asyncio.Future[Appended] = self.log.store.submit(write, fences=batch.fences)
        return await asyncio.shield(future)

    def _forget_unstored_devices(self, batch: Append, appended: Appended) -> None:
        for i, (_s, _e, device) in enumerate(batch.parts):
            if device >= 0 and _refused(appended, i):
                self.devices.forget(batch.devices[device])

    # state ---------------------------------------------------------------------------------
    def _forget(self, partitions: set[int]) -> None:
        """Drop the correlation state of these partitions' tenants (kept: the others')."""
        keep = {t for t in self.tenants if partition_of(t) not in partitions}
        self.correlator.keep_tenants(keep)

    async def _restore(self, partitions: set[int]) -> None:
        names = [t for t in self.tenants if partition_of(t) in partitions]
        sessions, presence = await self.state.load(names)
        self.correlator.restore(sessions, presence)

    async def _recover(self) -> None:
        """After a pass that did not commit: what it changed in memory is gone; every held
        partition continues from what is committed (restored before the next pass)."""
        async with self._lock:
            held = set(self.owned)
            self._forget(held)
            self.correlator.drain_changes()
            self.devices = DeviceCache()
            self._stale |= held


def _refused(appended: Appended, part: int) -> bool:
    """Whether part `part` of a committed batch was not stored (the database refused it)."""
    return part >= len(appended.parts) or appended.parts[part] is None


def _reply(appended: Appended, part: int, why: str) -> bytes:
    """What a caller waiting for an entry gets: its events as committed."""
    events = appended.part(part) or ()
    return orjson.dumps(
        {
            "found": why != "missing",
            "failed": why == "failed",
            "events": [{"tenant": e.tenant, "key": e.key, "seq": e.seq, "event_id": e.event_id}
                       for e in events],
        }
    )  # fmt: skip
