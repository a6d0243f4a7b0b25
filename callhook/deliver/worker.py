"""Per-endpoint queues: concurrency limits, per-session order, retries on timers.

Each endpoint has its own queue and at most `max_in_flight_per_endpoint` requests in flight,
so a slow or dead endpoint only ever occupies its own slots. Within an endpoint, events of
one session form a FIFO and only its head is eligible: the next event of a call goes out
after the previous one succeeded or was given up, while other sessions carry on. Events
without a session are independent. The database is the truth; these queues are a bounded
cache of its pending rows (refilled from it when they overflow).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callhook.deliver.dispatch import Dispatcher
    from callhook.deliver.outbox import Item

log = logging.getLogger("callhook.deliver")


@dataclass(slots=True)
class EndpointQueue:
    """The in-memory queue of one endpoint."""

    endpoint_id: str
    dispatcher: Dispatcher
    limit: int
    cap: int
    items: dict[str, Item] = field(default_factory=dict)  # everything in memory, by id
    sessions: dict[str, deque[Item]] = field(default_factory=dict)
    ready: deque[Item] = field(default_factory=deque)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    running: int = 0  # worker tasks draining `ready`
    starting: int = 0  # of which not started yet
    consecutive_failures: int = 0
    # Every pending row with seq <= frontier is in memory (or finished); rows above it may
    # wait in the database while the queue is `spilled` (it overflowed).
    frontier: int = 0
    spilled: bool = False
    refilling: bool = False
    dropped_while_refilling: int = 0
    finished_while_refilling: set[str] = field(default_factory=set)
    closed: bool = False

    def add(self, item: Item) -> bool:
        """Queue a just-committed delivery; False when it stays in the database for now."""
        if self.closed or item.delivery_id in self.items:
            return False
        if self.spilled:
            # Rows are waiting in the database ahead of this one: it must wait its turn
            # there too, or a refill would skip what lies between (per-session order).
            if self.refilling:
                self.dropped_while_refilling += 1
            return False
        if len(self.items) >= self.cap:
            self.spilled = True
            return False
        self.accept(item)
        self.frontier = max(self.frontier, item.seq)
        return True

    def accept(self, item: Item) -> None:
        """Take a delivery into memory unconditionally (refills, explicit redelivery)."""
        self.items[item.delivery_id] = item
        if item.session is None:
            self.arm(item)
            return
        fifo = self.sessions.get(item.session)
        if fifo is None:
            fifo = self.sessions[item.session] = deque()
        fifo.append(item)
        if len(fifo) == 1:
            self.arm(item)

    def arm(self, item: Item) -> None:
        """Make `item` eligible now, or when its `next_at` comes."""
        delay = item.next_at - self.dispatcher.clock()
        if delay <= 0:
            self.ready.append(item)
            self.pump()
        else:
            loop = asyncio.get_running_loop()
            self.timers[item.delivery_id] = loop.call_later(delay, self._due, item)

    def _due(self, item: Item) -> None:
        self.timers.pop(item.delivery_id, None)
        if not self.closed and item.delivery_id in self.items:
            self.ready.append(item)
            self.pump()

    def pump(self) -> None:
        """Start workers for ready deliveries: one per item, at most `limit` in all."""
        if self.closed:
            return
        # Workers started but not yet running will each take one of the ready items.
        for _ in range(min(len(self.ready) - self.starting, self.limit - self.running)):
            self.running += 1
            self.starting += 1
            self.dispatcher.spawn(self._work())

    async def _work(self) -> None:
        self.starting -= 1
        try:
            while self.ready and not self.closed:
                await self.dispatcher.attempt(self, self.ready.popleft())
        finally:
            self.running -= 1

    def finish(self, item: Item) -> None:
        """The delivery is done (succeeded, failed or held): release its session's next."""
        if self.items.pop(item.delivery_id, None) is None:
            return
        if self.refilling:
            self.finished_while_refilling.add(item.delivery_id)
        if item.session is not None:
            fifo = self.sessions.get(item.session)
            if fifo:
                if fifo[0] is item:
                    fifo.popleft()
                else:
                    fifo.remove(item)
                if fifo:
                    self.arm(fifo[0])
                else:
                    del self.sessions[item.session]
        if self.spilled and not self.refilling and len(self.items) <= self.cap // 2:
            self.dispatcher.refill(self)

    def close(self) -> list[Item]:
        """Stop sending; returns what was queued (the caller decides its fate)."""
        self.closed = True
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()
        left = list(self.items.values())
        self.items.clear()
        self.sessions.clear()
        self.ready.clear()
        return left

    @property
    def depth(self) -> int:
        return len(self.items)


def session_heads(queue: EndpointQueue) -> list[str]:
    """The delivery at the head of each session (for tests and the debug view)."""
    return [fifo[0].delivery_id for fifo in queue.sessions.values() if fifo]


Clock = Callable[[], float]
