"""DeliveryService: what the hub builds; wires outbox, queues, sender, recorder and health.

Health, from the attempts the dispatcher reports: an endpoint with `FAILING_AFTER`
consecutive failed attempts is *failing* (`endpoint_failing`); its next success makes it
*recovered* (`endpoint_recovered`); failing continuously for `disable_after`, or answering
410 Gone, disables it (`endpoint_disabled`): its pending deliveries, and those of events
arriving while it is disabled, are kept as `held` for a replay. These operational events
are appended to the event log (topic `webhook_events`), so subscribers see them, and logged.

In a cluster (`claims`, callhook/deliver/claims.py) the queues get only what this node
claimed in PostgreSQL, outcomes are written under the claim, and a change of an endpoint's
health is announced so every node reloads it: retries, health and disabling are shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from prometheus_client import CollectorRegistry

from callhook.config import Settings
from callhook.deliver import endpoints, outbox, payload
from callhook.deliver.claims import Claims
from callhook.deliver.dispatch import Dispatcher
from callhook.deliver.metrics import DeliveryMetrics
from callhook.deliver.outbox import Item, Outbox
from callhook.deliver.recorder import Recorder
from callhook.deliver.rules import Endpoint, Index
from callhook.deliver.sender import Sender
from callhook.directory import Tenant
from callhook.events import Event, unix_time
from callhook.store import Appended, Deliveries
from callhook.store.records import EndpointState

log = logging.getLogger("callhook.deliver")

FAILING_AFTER = 3  # consecutive failed attempts before an endpoint counts as failing
PRUNE_EVERY = 3600.0


class DeliveryService:
    """Call Events and JSON webhooks for one node."""

    def __init__(
        self,
        settings: Settings,
        store: Deliveries,
        publish: Callable[[Event], Awaitable[object]],
        tenant: Callable[[str], Tenant | None],
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        claims: Claims | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        # Where an endpoint's health events go: the event log on one node; on a cluster,
        # the owner of the tenant's partition (through the inbox), which then appends
        # every event of that tenant.
        self.publish = publish
        self.tenant = tenant
        self.clock = clock
        self.index = Index()
        d = settings.delivery
        self.outbox = Outbox(lambda: self.index, clock)
        self.sender = Sender(
            connect_timeout=d.connect_timeout,
            total_timeout=d.total_timeout,
            allow_private=settings.server.allow_private_targets,
        )
        self.claims = claims
        self.recorder = Recorder(claims if claims is not None else store)
        self.metrics = DeliveryMetrics(registry, lambda: sum(self.dispatcher.depth().values()))
        self.dispatcher = Dispatcher(
            sender=self.sender,
            recorder=self.recorder,
            store=store,
            index=lambda: self.index,
            build=self.build,
            settings=d,
            health=self,
            clock=clock,
            on_attempt=self.metrics.attempt,
        )
        self._tasks: set[asyncio.Task[Any]] = set()
        # Called after an endpoint was changed through the API (the hub tells other nodes).
        self.on_change: Callable[[], None] = lambda: None

    # lifespan --------------------------------------------------------------------------
    async def apply_config(self) -> list[str]:
        """Config-declared rules and webhooks into the database (after the directory)."""
        plan = endpoints.config_plan(self.settings, self.clock())
        changes = await self.store.sync_config_endpoints(plan)
        if changes:
            log.info("delivery endpoints applied from config", extra={"changes": changes})
        await self.reload()
        return changes

    async def start(self) -> None:
        """Queue what was pending when the last process ended (the hub has hooked
        `outbox.tx_hook` and `on_commit` into the event log)."""
        await self.reload()
        await self.sender.start()
        if self.claims is not None:
            await self.claims.start(self.dispatcher)  # claims what is due, from any node
        else:
            for endpoint_id in await self.store.pending_endpoints():
                ep = self.index.get(endpoint_id)
                if ep is not None and ep.active:
                    await self.dispatcher.load(endpoint_id)
        self._spawn(self._prune_loop())

    async def stop(self) -> None:
        await self.dispatcher.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.recorder.close()
        if self.claims is not None:
            await self.claims.stop()
        await self.sender.close()

    async def reload(self) -> None:
        self.index = Index(await self.store.load_endpoints())

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_commit(self, committed: Appended) -> None:
        """After-commit consumer: the deliveries the transaction created go to the queues."""
        items = self.outbox.items(committed)
        if not items:
            return
        if self.claims is not None:
            self.claims.committed(items)
        else:
            self.dispatcher.add(items)

    async def requeued(self, endpoint_id: str) -> None:
        """Deliveries of the endpoint became pending again (enabled, replay, redeliver)."""
        if self.claims is not None:
            self.claims.kick()
        else:
            await self.dispatcher.load(endpoint_id)

    # requests --------------------------------------------------------------------------
    def build(self, ep: Endpoint, item: Item, timestamp: int) -> payload.Request:
        if ep.kind == "webhook":
            return payload.webhook(ep, item.event_id, item.wire, timestamp)
        context = orjson.loads(item.context) if item.context else {}
        t = self.tenant(ep.tenant)
        directory = payload.Directory()
        if t is not None:
            directory = payload.Directory(t.display_name, t.is_extension, t.extended_prefix)
        body = outbox.wire_dict(item)
        return payload.call_event(
            ep, item.delivery_id, body, item.involved, context, timestamp, directory
        )

    # health (called by the dispatcher) -------------------------------------------------
    def succeeded(self, ep: Endpoint) -> None:
        current = self.index.get(ep.endpoint_id)
        if current is None or (current.health == "ok" and current.failing_since is None):
            return  # already recorded
        event = "endpoint_recovered" if current.health == "failing" else None
        self._set_state(current, "ok", None, current.disabled_reason, event, "delivered again")

    def failed(self, ep: Endpoint, consecutive: int, reason: str, gone: bool) -> None:
        current = self.index.get(ep.endpoint_id)
        if current is None or not current.active:
            return
        now = self.clock()
        since = current.failing_since if current.failing_since is not None else now
        if gone:
            self._set_state(current, "failing", since, "gone", "endpoint_disabled", reason)
        elif now - since >= self.settings.delivery.disable_after:
            why = f"failing since {unix_time(since)}: {reason}"
            self._set_state(current, "failing", since, "failing", "endpoint_disabled", why)
        elif current.health == "ok" and consecutive >= FAILING_AFTER:
            self._set_state(current, "failing", since, "", "endpoint_failing", reason)
        elif current.failing_since is None:
            self._set_state(current, current.health, since, "", None, reason)

    def _set_state(
        self,
        ep: Endpoint,
        health: str,
        failing_since: float | None,
        disabled_reason: str,
        event: str | None,
        reason: str,
    ) -> None:
        """Change an endpoint's health now (in memory), persist and announce it after."""
        new = replace(
            ep,
            health=health,
            failing_since=failing_since,
            disabled_reason=disabled_reason,
            updated_at=self.clock(),
        )
        self.index = self.index.replaced(new)  # at once: the outbox hook sees it from now on
        if disabled_reason and ep.active:
            self.dispatcher.drop(ep.endpoint_id)
        self._spawn(self._persist_state(new, hold=bool(disabled_reason) and ep.active))
        if event is not None:
            self._spawn(self.announce(new, event, reason))
        if disabled_reason and ep.active:
            self.metrics.disabled.inc()

    async def _persist_state(self, ep: Endpoint, *, hold: bool) -> None:
        if hold:
            await self.recorder.flush()  # outcomes decided before the disable land first
        state = EndpointState(ep.endpoint_id, ep.health, ep.failing_since, ep.disabled_reason)
        await self.store.set_endpoint_state(state, hold=hold, now=self.clock())
        if self.claims is not None:
            self.on_change()  # the other nodes reload it: health is the cluster's

    async def announce(self, ep: Endpoint, key: str, reason: str) -> None:
        """Append an operational event (topic webhook_events) and log it."""
        url = urlsplit(ep.url)
        body: dict[str, Any] = {
            "endpoint_id": ep.endpoint_id,
            "endpoint_type": ep.kind,
            "url": f"{url.scheme}://{url.netloc}{url.path}",  # no query: it may hold tokens
            "status": ep.status,
            "reason": reason,
            "failing_since": unix_time(ep.failing_since) if ep.failing_since else "",
            "tenant_name": ep.tenant,
            "time": unix_time(self.clock()),
        }
        t = self.tenant(ep.tenant)
        if t is not None:
            body["tenant_id"] = t.tenant_id
        if ep.kind == "call_event":
            body.update(extension=ep.extension, event=ep.event)
        exts = (ep.extension,) if ep.extension else ()
        level = logging.INFO if key == "endpoint_recovered" else logging.WARNING
        log.log(
            level, key, extra={"endpoint_id": ep.endpoint_id, "tenant": ep.tenant, "reason": reason}
        )
        await self.publish(Event(ep.tenant, key, body, extensions=exts))

    async def _prune_loop(self) -> None:
        days = self.settings.retention.deliveries_days
        while days > 0:
            await asyncio.sleep(PRUNE_EVERY)
            try:
                await self.prune(self.clock() - days * 86400)
            except Exception:
                log.exception("pruning the delivery log failed")

    async def prune(self, before: float) -> int:
        """Delete finished deliveries older than `before`, a chunk per transaction."""
        total = 0
        while True:
            n = await self.store.prune(before)
            total += n
            if not n:
                return total
            await asyncio.sleep(0.05)  # let ingest have the writer between chunks
