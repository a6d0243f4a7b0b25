"""Webhooks sent once by a cluster: every node's workers claim due deliveries in PostgreSQL.

Used by a clustered node (the store says what a claim is: callhook/store/postgres/
claims.py). The dispatcher and its per-endpoint queues work as on a single node, but they
only ever get deliveries this node claimed:

- **Fast path.** Deliveries this node just committed are claimed by id right after the
  commit (one statement for the whole batch) and handed to the local queues at once.
- **The next of a call.** A delivery that finished lets the next of its (endpoint,
  session) go: the node that finished it claims that one right after recording the
  outcome (the next statement), and sends it at once.
- **Claim passes.** On a notice from another node and every `poll` seconds (retries that
  came due, claims a dead node left to expire, work nobody took), the node claims due
  deliveries up to its room (`capacity` in memory).
- **Sharing.** A pass that filled its batch tells the other nodes (`NOTIFY`) that more is
  waiting, so a burst committed on one node is sent by all of them.
- **Holding.** A claim lasts `ttl` seconds and is renewed every `ttl / 3` for what the
  node holds in memory (waiting for a slot or for its retry time); outcomes are written
  only under the claim. A node that dies leaves its claims to expire: then any node takes
  them, with their attempts and retry schedule as the row says. A node that stops, or
  starts again under the same id, gives its claims back at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from callhook.deliver.dispatch import Dispatcher
from callhook.store.records import Attempt, Item, Update

log = logging.getLogger("callhook.deliver")


class ClaimStore(Protocol):
    """What the claims need of the database (store.postgres.claims.ClaimTable)."""

    async def claim_due(self, now: float, limit: int) -> list[Item]: ...
    async def claim_ids(self, ids: list[str], now: float) -> set[str]: ...
    async def renew(self, ids: list[str]) -> set[str]: ...
    async def record(
        self, updates: list[Update], attempts: list[Attempt], now: float | None = None
    ) -> list[Item]: ...
    async def release(self) -> int: ...
    async def backlog(self, now: float) -> list[dict[str, Any]]: ...
    async def notify(self) -> None: ...
    async def close(self) -> None: ...


Listen = Callable[[Callable[[], None], asyncio.Event], Coroutine[Any, Any, None]]


class Claims:
    """This node's side of the cluster's delivery claims."""

    def __init__(
        self,
        table: ClaimStore,
        listen: Listen,
        *,
        ttl: float,
        poll: float,
        capacity: int = 5000,
        batch: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.table = table
        self._listen = listen
        self.ttl = ttl
        self.poll = poll
        self.capacity = capacity
        self.batch = batch
        self.clock = clock
        self.dispatcher: Dispatcher | None = None
        self.listening = asyncio.Event()
        self._pass: asyncio.Task[None] | None = None
        self._again = False
        self._full = False  # work was left unclaimed for want of room: claim when some frees
        self._tasks: set[asyncio.Task[Any]] = set()
        self.claimed = 0  # deliveries this node claimed (tests, metrics)

    # lifespan --------------------------------------------------------------------------
    async def start(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        try:
            n = await self.table.release()  # a node started again under the same id
            if n:
                log.info("gave back %d delivery claims of a previous run", n)
        except Exception as exc:
            log.warning("cannot give back earlier delivery claims: %s", exc)
        self._spawn(self._listen(self.kick, self.listening))
        self._spawn(self._timers())
        with contextlib.suppress(TimeoutError):  # not fatal: the poll finds the work too
            await asyncio.wait_for(self.listening.wait(), 5)
        self.kick()

    async def stop(self) -> None:
        """After the dispatcher stopped and the recorder flushed: give the claims back."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            if await self.table.release():
                await self.table.notify()  # the others take them now, not after `ttl`
        except Exception as exc:
            log.warning("cannot give back delivery claims (they expire by themselves): %s", exc)
        await self.table.close()

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # the fast path ---------------------------------------------------------------------
    def committed(self, items: list[Item]) -> None:
        """Deliveries this node just committed: claim them by id, queue the ones it got."""
        if items and self.dispatcher is not None:
            self._spawn(self._claim_committed(items))

    async def _claim_committed(self, items: list[Item]) -> None:
        try:
            if self.room() < len(items):
                self._full = True  # taken here once room frees, if no other node did
                await self.table.notify()  # full here: another node takes them
                return
            got = await self.table.claim_ids([i.delivery_id for i in items], self.clock())
        except Exception as exc:
            log.warning("claiming new deliveries failed (a claim pass retries): %s", exc)
            return
        mine = [i for i in items if i.delivery_id in got]
        self.claimed += len(mine)
        if mine and self.dispatcher is not None:
            self.dispatcher.add(mine)
        # The rest wait behind an earlier delivery of their session: whoever finishes
        # that one claims them in its next pass.

    # claim passes ----------------------------------------------------------------------
    def room(self) -> int:
        d = self.dispatcher
        return 0 if d is None or d.closed else self.capacity - sum(d.depth().values())

    def kick(self) -> None:
        """Run a claim pass soon (one at a time; a kick during a pass runs another)."""
        if self._pass is not None:
            self._again = True
            return
        self._pass = asyncio.get_running_loop().create_task(self._claim_passes())

    async def _claim_passes(self) -> None:
        try:
            while True:
                self._again = False
                await self._claim_due()
                if not self._again:
                    return
        finally:
            self._pass = None

    async def _claim_due(self) -> None:
        told = False
        self._full = False
        while True:
            room = self.room()
            if room <= 0:
                self._full = True  # due work may be left: a pass once an outcome frees room
                return
            limit = min(self.batch, room)
            try:
                items = await self.table.claim_due(self.clock(), limit)
            except Exception as exc:
                log.warning("claiming due deliveries failed: %s", exc)
                return
            if items and self.dispatcher is not None:
                self.claimed += len(items)
                self.dispatcher.add(items)
            if len(items) < limit:
                return
            if not told:  # more is waiting than one batch: share it
                told = True
                with contextlib.suppress(Exception):
                    await self.table.notify()

    # outcomes (recorder.Writer) --------------------------------------------------------
    async def record(self, updates: list[Update], attempts: list[Attempt]) -> None:
        # A finished delivery lets the next of its session go: claimed right after the
        # outcomes are written, sent from here at once.
        following = await self.table.record(updates, attempts, self.clock())
        if following and self.dispatcher is not None:
            self.claimed += len(following)
            self.dispatcher.add(following)
        if self._full and self.room() > 0:
            self.kick()  # work was left waiting for room, and some just freed

    # holding ---------------------------------------------------------------------------
    async def _timers(self) -> None:
        renew_every = self.ttl / 3
        last_renew = time.monotonic()
        while True:
            await asyncio.sleep(self.poll)
            self.kick()
            if time.monotonic() - last_renew >= renew_every:
                last_renew = time.monotonic()
                await self._renew()

    async def _renew(self) -> None:
        d = self.dispatcher
        if d is None:
            return
        held = [i for q in d.queues.values() for i in q.items]
        try:
            kept = await self.table.renew(held)
        except Exception as exc:
            log.warning("renewing delivery claims failed: %s", exc)
            return
        lost = set(held) - kept
        if not lost:
            return
        # Another node took them (this one stalled past its claims): drop those not in
        # flight, so that they are not sent twice.
        dropped = 0
        for q in d.queues.values():
            for delivery_id in lost & q.items.keys():
                item = q.items[delivery_id]
                handle = q.timers.pop(delivery_id, None)
                if handle is not None:
                    handle.cancel()
                elif item in q.ready:
                    q.ready.remove(item)
                else:
                    continue  # in flight: its outcome is not written (not this node's)
                q.finish(item)
                dropped += 1
        log.warning(
            "%d delivery claims were taken over by another node (%d dropped here)",
            len(lost),
            dropped,
        )
