"""The dispatcher: owns the endpoint queues, makes attempts, turns outcomes into records.

One attempt: build the request (fresh timestamp, same id), send it, classify the response
(backoff.classify: Success / Retry / GiveUp), record the attempt and the delivery's new
state through the batching recorder, then release the session's next event or re-arm this
one on the retry schedule. Endpoint health is reported to the service, which decides
about failing / recovered / disabled.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from callhook.config import DeliveryConfig
from callhook.deliver import backoff
from callhook.deliver.outbox import Item
from callhook.deliver.payload import Request
from callhook.deliver.recorder import Attempt, Recorder, Update
from callhook.deliver.rules import Endpoint, Index
from callhook.deliver.sender import Response, Sender
from callhook.deliver.worker import EndpointQueue

log = logging.getLogger("callhook.deliver")


class Health(Protocol):
    """Told about every attempt's result; decides what it means for the endpoint."""

    def succeeded(self, ep: Endpoint) -> None: ...

    def failed(self, ep: Endpoint, consecutive: int, reason: str, gone: bool) -> None: ...


class Pending(Protocol):
    """The part of the store the dispatcher reads: an endpoint's pending deliveries."""

    async def load_pending(
        self, endpoint_id: str, *, after_seq: int = 0, limit: int = 10_000
    ) -> list[Item]: ...


Builder = Callable[[Endpoint, Item, int], Request]


class Dispatcher:
    """All endpoint queues of this node."""

    def __init__(
        self,
        *,
        sender: Sender,
        recorder: Recorder,
        store: Pending,
        index: Callable[[], Index],
        build: Builder,
        settings: DeliveryConfig,
        health: Health,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
        cap: int = 20_000,
        on_attempt: Callable[[str, str, float], None] = lambda _kind, _result, _latency: None,
    ) -> None:
        self.sender = sender
        self.recorder = recorder
        self.store = store
        self.index = index
        self.build = build
        self.settings = settings
        self.health = health
        self.clock = clock
        self.rand = rand
        self.cap = cap
        self.on_attempt = on_attempt  # metrics: (endpoint kind, result, latency)
        self.queues: dict[str, EndpointQueue] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.attempts = 0

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def queue(self, endpoint_id: str) -> EndpointQueue:
        q = self.queues.get(endpoint_id)
        if q is None:
            limit = self.settings.max_in_flight_per_endpoint
            q = self.queues[endpoint_id] = EndpointQueue(endpoint_id, self, limit, self.cap)
        return q

    def add(self, items: list[Item]) -> None:
        if self.closed:
            return  # shutting down: the rows are pending in the database
        for item in items:
            self.queue(item.endpoint_id).add(item)

    def drop(self, endpoint_id: str) -> list[Item]:
        """Forget an endpoint's queue (disabled or deleted); returns what it held."""
        q = self.queues.pop(endpoint_id, None)
        return q.close() if q is not None else []

    def add_now(self, items: list[Item]) -> None:
        """Explicit requeues (redeliver): into memory whatever the queue's fill."""
        for item in items:
            q = self.queue(item.endpoint_id)
            if not q.closed and item.delivery_id not in q.items:
                q.accept(item)

    def refill(self, q: EndpointQueue) -> None:
        if not q.refilling:
            q.refilling = True
            self.spawn(self.load(q.endpoint_id, after_seq=q.frontier))

    async def load(self, endpoint_id: str, *, after_seq: int = 0) -> int:
        """Queue the endpoint's pending rows above `after_seq` from the database, in seq
        order, as far as there is room (at start, on replay, after an overflow)."""
        q = self.queue(endpoint_id)
        q.refilling = True
        q.dropped_while_refilling = 0
        q.finished_while_refilling.clear()
        q.spilled = True  # while reading, new arrivals wait in the database: they are read too
        added, last, full = 0, after_seq, False
        try:
            # Outcomes not yet written would make finished rows look pending: write them first.
            await self.recorder.flush()
            while not q.closed and not full:
                page = 1000
                rows = await self.store.load_pending(endpoint_id, after_seq=last, limit=page)
                for item in rows:
                    if (
                        item.delivery_id in q.items
                        or item.delivery_id in q.finished_while_refilling
                    ):
                        last = item.seq
                        continue
                    if len(q.items) >= q.cap:
                        full = True
                        break
                    q.accept(item)
                    added += 1
                    last = item.seq
                if len(rows) < page:
                    break
            if full:
                q.frontier = last  # the rows above it are read by the next refill
            else:
                q.frontier = max(q.frontier, last)
                q.spilled = q.dropped_while_refilling > 0
        finally:
            q.refilling = False
            q.finished_while_refilling.clear()
        if q.spilled and not q.closed and len(q.items) <= q.cap // 2:
            self.refill(q)
        return added

    async def attempt(self, q: EndpointQueue, item: Item) -> None:
        ep = self.index().get(q.endpoint_id)
        if ep is None:  # deleted meanwhile: its rows went with it
            q.finish(item)
            return
        if not ep.active:
            self._hold(q, item)
            return
        try:
            request = self.build(ep, item, int(self.clock()))
        except Exception as exc:  # a rule that cannot produce a request: nothing to retry
            log.warning(
                "cannot build request", extra={"endpoint_id": ep.endpoint_id, "error": str(exc)}
            )
            resp = Response(None, 0.0, error=f"cannot build request: {exc}", refused=True)
        else:
            resp = await self.sender.send(request)
        self.attempts += 1
        now = self.clock()
        outcome = backoff.classify(
            resp.status,
            error=resp.error,
            refused=resp.refused,
            retry_after=resp.retry_after,
            now=now,
        )
        n = item.attempts = item.attempts + 1
        record = Attempt(
            item.delivery_id,
            n,
            now,
            resp.status,
            round(resp.latency * 1000, 1),
            resp.error,
            resp.excerpt,
        )
        if isinstance(outcome, backoff.Success):
            self.on_attempt(ep.kind, "succeeded", resp.latency)
            self.recorder.add(
                Update(item.delivery_id, "succeeded", n, now, resp.status, "", now), record
            )
            q.finish(item)
            q.consecutive_failures = 0
            if ep.health != "ok" or ep.failing_since is not None:
                self.health.succeeded(ep)
            return
        q.consecutive_failures += 1
        reason = outcome.reason
        status = "failed"
        if isinstance(outcome, backoff.Retry):
            schedule = ep.schedule if ep.schedule is not None else self.settings.schedule
            delay = backoff.next_delay(
                outcome,
                n - item.schedule_base,
                schedule,
                jitter=self.settings.jitter,
                max_retry_after=self.settings.max_retry_after,
                rand=self.rand,
            )
            if delay is not None:
                # A queue closed by disable holds its retries; one closed by shutdown keeps
                # them pending for the next start.
                status = "held" if q.closed and not self.closed else "pending"
                item.next_at = now + delay
        self.recorder.add(
            Update(item.delivery_id, status, n, item.next_at, resp.status, reason, now), record
        )
        self.on_attempt(ep.kind, "retry" if status == "pending" else "failed", resp.latency)
        if status != "pending":
            q.finish(item)
        elif not q.closed:
            q.arm(item)
        gone = isinstance(outcome, backoff.GiveUp) and outcome.disable
        self.health.failed(ep, q.consecutive_failures, reason, gone)

    def _hold(self, q: EndpointQueue, item: Item) -> None:
        now = self.clock()
        self.recorder.add(
            Update(item.delivery_id, "held", item.attempts, now, None, "endpoint disabled", now)
        )
        q.finish(item)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop sending; wait a little for requests in flight, then cancel them.

        Cancelled and unsent deliveries stay pending in the database and go out after restart.
        """
        self.closed = True
        for q in self.queues.values():
            q.close()
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def depth(self) -> dict[str, int]:
        return {eid: q.depth for eid, q in self.queues.items()}
