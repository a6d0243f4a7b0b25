"""Each tenant's events handed to a node's subscribers once, in `seq` order.

Events reach a clustered node three ways: its own as committed, other nodes' from the
Redis streams, and the log's when those two left a gap. Per tenant, `seq` N is handed
over only after N-1: an event that arrives early (Redis was away, an XADD was lost, a
stream was trimmed) makes the tenant read the missing ones from the log first, with what
arrives meanwhile held back; one that arrives again (already handed over) is dropped.
The PostgreSQL log is the source of truth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from callhook.bus import Subscriber, hand_over
from callhook.bus.streams import from_log
from callhook.cluster.partitions import partition_of
from callhook.events import Event
from callhook.store import EventLog

log = logging.getLogger("callhook.bus")

PAGE = 500  # events per log read when filling a gap
RETRY = 0.5  # seconds between attempts to read the log again


class InOrder:
    """Hands each tenant's events to `subscribers` once, in order, reading the log for
    what is missing; `spawn` runs its log reads as tasks (the bus's, stopped with it)."""

    def __init__(
        self,
        events: EventLog,
        tenants: Callable[[], Iterable[str]],
        spawn: Callable[[Coroutine[Any, Any, None]], None],
    ) -> None:
        self._log = events
        self._tenants = tenants
        self._spawn = spawn
        self.subscribers: list[Subscriber] = []
        self._cursor: dict[str, int] = {}  # tenant -> last seq handed to subscribers
        self._filling: dict[str, list[Event]] = {}  # tenant -> arrivals during a fill
        self._fill_again: set[str] = set()  # filling, and to read the log once more after
        self._reads = asyncio.Semaphore(4)
        self.filled = 0  # events read from the log to fill gaps

    async def start(self) -> None:
        """Every tenant goes on from the newest event the log has now."""
        for tenant in list(self._tenants()):
            self._cursor[tenant] = await self._log.last_seq(tenant)

    def read_log_of(self, partitions: frozenset[int]) -> None:
        """The tenants of `partitions` read the log after what was delivered here."""
        if not partitions:
            return
        for tenant in self._tenants():
            if partition_of(tenant) in partitions:
                self.read_log_after_now(tenant)

    def read_log_after_now(self, tenant: str) -> None:
        """`tenant` reads the log after what was delivered here, in a read that begins
        after this call (a fill already under way reads once more)."""
        if tenant in self._filling:
            self._fill_again.add(tenant)
            return
        self._filling[tenant] = []
        self._spawn(self._fill(tenant))

    def accept(self, events: Iterable[Event]) -> None:
        """Events as they come (committed here, or read from a stream): the next of each
        tenant handed over now, an early one held back while the log fills the gap."""
        ready: list[Event] = []
        for ev in events:
            tenant = ev.tenant
            waiting = self._filling.get(tenant)
            if waiting is not None:
                waiting.append(ev)
                continue
            last = self._cursor.get(tenant, 0)
            if ev.seq <= last:
                continue  # delivered already (our own, or a re-sent entry)
            if ev.seq == last + 1:
                self._cursor[tenant] = ev.seq
                ready.append(ev)
                continue
            self._filling[tenant] = [ev]  # a gap: the log has what is missing
            self._spawn(self._fill(tenant))
        if ready:
            self._deliver(ready)

    def _deliver(self, events: list[Event]) -> None:
        hand_over(self.subscribers, events)

    async def _fill(self, tenant: str) -> None:
        """Hand over what the log has after this tenant's cursor, then what arrived
        meanwhile; read the log again while what arrived still starts past a gap, or
        when asked to during the read (`read_log_after_now`)."""
        while True:
            self._fill_again.discard(tenant)
            before = {id(ev) for ev in self._filling.get(tenant, [])}  # arrived before the read
            read = await self._read_log(tenant)
            waiting = sorted(self._filling.get(tenant, []), key=lambda e: e.seq)
            ready: list[Event] = []
            rest: list[Event] = []
            for i, ev in enumerate(waiting):
                last = self._cursor.get(tenant, 0)
                if ev.seq <= last:
                    continue
                if ev.seq != last + 1 and (read or id(ev) not in before):
                    rest = waiting[i:]  # maybe committed after the read began: read again
                    break
                self._cursor[tenant] = ev.seq  # next, or not in the log (pruned): go on
                ready.append(ev)
            if ready:
                self._deliver(ready)
            if not rest and tenant not in self._fill_again:
                self._filling.pop(tenant, None)
                return
            self._filling[tenant] = rest

    async def _read_log(self, tenant: str) -> int:
        """Deliver the log after the cursor, to its end; how many events that was."""
        while True:
            count = 0
            try:
                async with self._reads:
                    while True:
                        last = self._cursor.get(tenant, 0)
                        page = await self._log.read_stored(tenant, last, None, PAGE)
                        events = [from_log(tenant, s) for s in page]
                        if events:
                            self._cursor[tenant] = events[-1].seq
                            self.filled += len(events)
                            count += len(events)
                            self._deliver(events)
                        if len(page) < PAGE:
                            return count
            except Exception as exc:  # the database is away: try again, keep the order
                log.warning("filling a bus gap from the log failed: %s", exc)
                await asyncio.sleep(RETRY)

    def sweep(self) -> None:
        """After Redis was away: every tenant reads the log after its cursor."""
        for tenant in {*self._tenants(), *self._cursor}:
            self.read_log_after_now(tenant)
