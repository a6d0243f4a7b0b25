"""Composition root: builds store, bus, correlator, pipeline and servers; owns the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from callhook.api.app import build_api, phone_targets
from callhook.api.middleware import ApiMetrics
from callhook.bus import Bus, bus_class, clustered
from callhook.cluster.leases import Leases
from callhook.config import ConfigError, Settings, default_node_id, redact_url
from callhook.connections import ConnectionLimits
from callhook.correlate import CorrelationSettings, Correlator
from callhook.dashboard.shared_tickets import ticket_book
from callhook.deliver.claims import Claims
from callhook.deliver.service import DeliveryService
from callhook.directory import Tenant
from callhook.events import Event
from callhook.flow import Flow, LocalFlow
from callhook.ingest.routes import (
    IngestEndpoint,
    Receive,
    Scope,
    Send,
    TenantResolver,
)
from callhook.limits.node import node_limits
from callhook.listeners import StartupError
from callhook.ops import Metrics
from callhook.pipeline import Pipeline
from callhook.proxies import TrustedProxies
from callhook.reload import ConfigReload
from callhook.retention import Retention
from callhook.store import Append, ApplyReport, open_store
from callhook.traffic_log import TrafficLog
from callhook.wsi.service import WsiService

log = logging.getLogger("callhook")

# The cyclic GC's first threshold (CPython's default: 700 net allocations). Closed calls
# stay in memory for `dedup_window` (their late reports are dropped), so under phone load
# the heap holds tens of thousands of containers made since start; with the default the
# GC scanned them all about once a second for 60-90 ms, ~20% of ingest's CPU
# (bench/README.md). Nearly everything here is freed by reference counting: a young
# generation of 20,000 leaves at most that many objects of cyclic garbage waiting.
GC_YOUNG_THRESHOLD = 20_000


class Hub:
    """One callhook node: everything long-lived is built here and nowhere else."""

    def __init__(self, settings: Settings, config_path: str | None = None) -> None:
        self.settings = settings
        self.reload_config = ConfigReload(self, config_path)  # SIGHUP, API, `callhook reload`
        self.metrics = Metrics()
        conns = settings.connections
        server = settings.server
        # Clustered (a Redis bus): several nodes write to one PostgreSQL database.
        shared = {"shared": True} if clustered(server.bus) else {}
        self.store = open_store(
            server.database,
            durability=server.durability,
            readers=server.database_pool,
            timeout=server.database_timeout,
            **shared,
        )
        self.log = self.store.log
        self.node_id = server.node_id or default_node_id(server)
        self.tenants: dict[str, Tenant] = {}
        self.bus = self._build_bus()
        self.leases = self._build_leases()
        # partition -> inbox rows not processed yet, for the cluster status (set by the
        # clustered pipeline; None: not known)
        self.inbox_lag: Callable[[], Awaitable[dict[int, int]]] | None = None
        self.correlator = self._new_correlator()
        self.flow = self._build_flow()
        self.pipeline = self.flow.intake  # phones, REST publish, end call, Kamailio
        self.state = self.flow.state  # presence and open calls, for the API and WSI
        self.resolver = TenantResolver()
        # Brute-force limits: in this process, or for the whole cluster in Redis.
        self.limits = node_limits(settings.auth, server.bus, self.node_id)
        self._api_keys: dict[str, tuple[str | None, float]] = {}
        self.retention = Retention(
            self.store.maintenance, settings.retention, self.metrics.registry
        )
        self.api_metrics = ApiMetrics(self.metrics.registry, lambda: len(self.tenants))
        self.ready = False
        self.started_at = time.time()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = contextlib.AsyncExitStack()  # what start() started, for stop()
        # The client behind a listed reverse proxy (callhook/proxies.py): for open ingest
        # networks, rate limits and logs.
        self.proxies = TrustedProxies(
            settings.server.trusted_proxies, settings.server.trusted_proxy_header
        )
        self.connections = ConnectionLimits(  # both listeners' connections, counted together
            conns.max_open,
            conns.max_per_source,
            self.metrics.registry,
            unlimited_source=self.proxies.trusted,  # a proxy carries many clients' connections
        )
        self.traffic = TrafficLog()  # phone refusals, failed logins (callhook/traffic_log.py)
        self.ingest = IngestEndpoint(
            self.pipeline,
            self.resolver,
            self.metrics,
            self.traffic,
            proxies=self.proxies,
            unknown_tokens=self.limits.ingest,
        )
        self.dashboard_tickets = ticket_book(server.bus)  # dashboard login to WSI
        self.wsi = WsiService(
            self,
            self.metrics.registry,
            tickets=self.dashboard_tickets,
            traffic=self.traffic,
            auth_metrics=self.metrics.auth,
            proxies=self.proxies,
        )
        self.delivery = DeliveryService(
            settings,
            self.store.deliveries,
            self._health_events(),
            self.tenants.get,
            registry=self.metrics.registry,
            claims=self._build_claims(),
        )
        self.delivery.on_change = self.bus.directory_changed  # endpoints, on every node
        self.api = build_api(self)
        self.ingest.is_phone = phone_targets(self.api)

    def _health_events(self) -> Callable[[Event], Awaitable[object]]:
        """Where webhook endpoints' health events go (callhook/deliver/service.py)."""
        if clustered(self.settings.server.bus):
            return self.pipeline.publish  # to the tenant's owner: it alone appends its events
        return lambda event: self.log.append(Append([event]))

    async def cluster_status(self) -> dict[str, Any]:
        """This node and the others whose heartbeat is fresh (`GET /api/v1/cluster`)."""
        url = self.settings.server.bus
        try:
            nodes = await asyncio.wait_for(self.bus.nodes(), 5)
        except Exception:  # Redis is away: say so, the rest of the hub goes on
            nodes = []
        if not clustered(url):
            now = time.time()
            nodes = [{"node_id": self.node_id, "started_at": self.started_at, "seen_at": now,
                      "bus_connected": True, "lag_ms": 0, "unsent": 0, "received": 0,
                      "filled_from_log": 0}]  # fmt: skip
        leases_reachable, partitions = await self.partitions()
        backlog: list[dict[str, Any]] | None = None
        claims = self.delivery.claims
        if claims is not None:
            with contextlib.suppress(Exception):  # PostgreSQL away: shown as unknown
                backlog = await asyncio.wait_for(claims.table.backlog(time.time()), 5)
        return {
            "clustered": clustered(url),
            "node_id": self.node_id,
            "bus": redact_url(url),
            "bus_reachable": bool(nodes) or not clustered(url),
            "nodes": nodes,
            "leases_reachable": leases_reachable,
            "partitions": partitions,
            "deliveries": backlog,
        }

    def _build_leases(self) -> Leases | None:
        """A clustered node holds its share of the partitions (callhook/cluster/leases.py);
        the clustered pipeline processes them (`on_acquired` / `on_lost`). One node: none."""
        if not clustered(self.settings.server.bus):
            return None
        from callhook.store.postgres.leases import LeaseTable  # the config demands PostgreSQL

        c = self.settings.cluster
        table = LeaseTable(self.settings.server.database)
        return Leases(
            table,
            self.node_id,
            ttl=c.lease_ttl,
            renew=c.lease_renew,
            registry=self.metrics.registry,
        )

    def _build_claims(self) -> Claims | None:
        """A clustered node's workers claim deliveries in PostgreSQL, so any node sends
        what any node committed (callhook/deliver/claims.py). One node: its own queues."""
        if not clustered(self.settings.server.bus):
            return None
        from callhook.store.postgres.claims import ClaimTable, listen  # PostgreSQL, surely

        url, me, d = self.settings.server.database, self.node_id, self.settings.delivery
        timeout = self.settings.server.database_timeout
        return Claims(
            ClaimTable(url, me, ttl=d.claim_ttl, timeout=timeout),
            lambda wake, listening: listen(url, me, wake, listening, timeout),
            ttl=d.claim_ttl,
            poll=d.claim_poll,
        )

    async def partitions(self) -> tuple[bool, list[dict[str, Any]]]:
        """Each partition's owner, epoch, seconds its lease has left, inbox lag; and
        whether PostgreSQL answered."""
        if self.leases is None:
            return True, []
        try:
            rows, _ = await asyncio.wait_for(self.leases.status(), 5)
            lag = await asyncio.wait_for(self.inbox_lag(), 5) if self.inbox_lag else {}
        except Exception as exc:  # PostgreSQL is away: say so, the rest goes on
            log.warning("cluster status: partition leases unreadable: %s", exc)
            return False, []
        return True, [
            {
                "partition": r.partition,
                "owner": r.owner if r.expires_in > 0 else None,
                "last_owner": r.owner,
                "epoch": r.epoch,
                "expires_in": max(0.0, r.expires_in),
                "inbox_lag": lag.get(r.partition),
            }
            for r in rows
        ]

    def _new_correlator(self) -> Correlator:
        c = self.settings.correlation
        return Correlator(
            self.tenants.get,
            CorrelationSettings(
                merge_window=c.merge_window,
                session_timeout=c.session_timeout,
                ring_timeout=c.ring_timeout,
                min_ring_seconds=c.min_ring_seconds,
                max_sessions_per_tenant=c.max_sessions_per_tenant,
                fault_event=self.settings.testing.correlator_fault,
            ),
        )

    def _build_flow(self) -> Flow:
        """One node correlates in-process (callhook/pipeline.py); a cluster node hands
        every report to the inbox, correlated by its partition's owner, maybe this node
        (callhook/cluster/flow.py)."""
        tick = self.settings.correlation.tick_interval

        def failed(tenant: str) -> None:
            self.metrics.correlation_failures.labels(tenant).inc()

        server = self.settings.server
        if not clustered(server.bus):
            pipeline = Pipeline(self.log, self.correlator, failed)
            return LocalFlow(pipeline, self.correlator, self.store.state, self.tenants, tick)
        from callhook.bus.redis import RedisBus
        from callhook.cluster.flow import ClusterFlow  # psycopg: only a cluster needs it
        from callhook.cluster.metrics import ClusterCollector
        from callhook.store.sql.store import SqlStore

        # The config allows a Redis bus on PostgreSQL only; a cluster node has leases.
        assert isinstance(self.store, SqlStore) and self.leases is not None
        flow = ClusterFlow(
            server.database,
            self.store,
            self.leases,
            self.correlator,
            self._new_correlator,
            self.tenants,
            lambda: self.reload_directory(announce=False),
            tick_interval=tick,
            correlation_failed=failed,
            timeout=server.database_timeout,
            owned=self._bus_owns,
        )
        self.inbox_lag = flow.inbox.lag
        assert isinstance(self.bus, RedisBus)  # a Redis bus is what makes a cluster node
        self.metrics.registry.register(ClusterCollector(self.bus, flow.owner))
        return flow

    def _bus_owns(self, partitions: frozenset[int]) -> None:
        """The partitions this node owns changed: the Redis bus reads the others' only."""
        from callhook.bus.redis import RedisBus

        if isinstance(self.bus, RedisBus):
            self.bus.own(partitions)

    def _build_bus(self) -> Bus:
        """The in-process bus of one node, or the Redis Streams bus of a cluster
        (callhook/bus/redis.py), by the scheme of `[server] bus`."""
        url = self.settings.server.bus
        cls = bus_class(url)
        if not clustered(url):
            memory: Bus = cls()
            return memory
        shared = cls(url, self.node_id, self.log, lambda: list(self.tenants))
        shared.on_directory = self._directory_changed_elsewhere  # another node changed it
        joined: Bus = shared
        return joined

    # lifespan --------------------------------------------------------------------------
    async def start(self, wsi_socket: socket.socket | None = None) -> None:
        """Start everything in order; on a failure, stop what had started (in reverse order)
        and raise (StartupError, ConfigError, or the failure itself).

        `wsi_socket`: the WSI listener's socket, bound beforehand (callhook/listeners.py).
        """
        async with contextlib.AsyncExitStack() as stack:
            try:
                await self.store.open()
            except Exception as exc:
                raise StartupError(f"server.database: cannot open it: {exc}") from exc
            stack.push_async_callback(self.store.close)
            await self.apply_config()
            stack.push_async_callback(self.retention.stop)
            await self.retention.resume(set(self.tenants))  # purges deleted tenants' data
            await self.flow.start()  # one node: its calls and presence restored
            stack.push_async_callback(self.flow.close)
            self._hook_event_log()
            await self.delivery.start()
            stack.push_async_callback(self.delivery.stop)
            await self.bus.start()
            stack.push_async_callback(self.bus.stop)
            await self.limits.start()
            stack.push_async_callback(self.limits.stop)
            await self.dashboard_tickets.start()
            stack.push_async_callback(self.dashboard_tickets.stop)
            if self.leases is not None:  # after what processing a partition needs
                await self.leases.start()
                stack.push_async_callback(self.leases.stop)
            await self.wsi.start(wsi_socket)
            stack.push_async_callback(self.wsi.stop)
            await self.flow.run()  # timers; a cluster node's leases and inbox processing
            stack.push_async_callback(self.flow.halt)
            self._tasks.append(asyncio.create_task(self.retention.run(), name="retention"))
            stack.push_async_callback(self._cancel_tasks)
            self._running = stack.pop_all()  # started: stop() unwinds it
        # What exists now (app, routes, schemas, restored state) lives as long as the
        # process: keep the cyclic GC from re-scanning it in every older-generation pass.
        # The hot paths allocate a lot (webhook sends: ~15% less CPU per delivery).
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
        self.ready = True

    async def stop(self) -> None:
        """Stop what start() started, in reverse order."""
        self.ready = False
        await self._running.aclose()

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def apply_config(self) -> ApplyReport:
        """Make the database's directory match the config file, then reload the read model.

        Raises ConfigError, having changed nothing, if the file clashes with the database.
        """
        hashes = await self.store.directory.hash_passwords(self.settings)
        report = await self.store.directory.apply_config(self.settings, hashes)
        if report.refused:
            raise ConfigError("; ".join(report.refused))
        await self.reload_directory()
        await self.delivery.apply_config()  # rules and webhooks declared in the file
        if not report.unchanged:
            log.info(
                "config applied",
                extra={
                    "added": report.added,
                    "changed": report.changed,
                    "removed": report.removed,
                    "detached": report.detached,
                },
            )
        for name in report.kept:  # every start, until the operator decides
            log.warning(
                f"TENANT {name!r} IS NO LONGER IN THE CONFIG FILE: its events, CDRs and devices"
                f" are kept and its phones are refused; declare it again to bring it back, or"
                f" delete it and its data with `callhook tenants purge {name}`",
                extra={"tenant": name},
            )
        return report

    async def reload_directory(self, *, announce: bool = True) -> None:
        """Reload tenants, extensions, keys ... from the database; `announce`: this node
        changed them, so other nodes (a cluster) reload theirs too."""
        if announce:
            self.bus.directory_changed()
        tenants = await self.store.directory.load()
        self.tenants.clear()
        self.tenants.update(tenants)
        self.resolver.load(self.tenants)
        self.correlator.keep_tenants(self.tenants)  # a deleted tenant's calls and presence go
        await self.wsi.directory_changed()  # open sessions lose what was revoked, at once
        await self.delivery.reload()  # a deleted tenant's endpoints went with it (cascade)

    def forget_api_keys(self) -> None:
        """Drop cached key lookups, so a revoked key stops working at once (on every node)."""
        self._api_keys.clear()
        self.bus.directory_changed()

    async def _directory_changed_elsewhere(self) -> None:
        """Another node changed the directory (bus notice): reload, forget cached keys."""
        self._api_keys.clear()
        await self.reload_directory(announce=False)

    async def tenant_of_api_key(self, key: str) -> str | None:
        cached = self._api_keys.get(key)
        now = time.monotonic()
        if cached and now - cached[1] < 30:  # revocation takes effect within 30 s
            return cached[0]
        tenant = await self.store.directory.tenant_of_api_key(key)
        if tenant is not None:
            if len(self._api_keys) > 10_000:
                self._api_keys.clear()
            self._api_keys[key] = (tenant, now)
        return tenant

    def _hook_event_log(self) -> None:
        """Who sees appended events, in this order (before any event is appended):

        inside the transaction, the webhook outbox asks for its delivery rows (they commit
        or roll back with the events); after COMMIT, on the event loop and in commit order,
        each `Appended` goes to (1) the metrics, (2) the bus, which fans it out to WSI
        subscribers and the dashboard, (3) the delivery queues. Live subscribers come before
        webhooks: their latency is the one people watch.
        """
        self.log.tx_hooks.append(self.delivery.outbox.tx_hook)
        self.log.commit_hooks.extend(
            [
                lambda c: self.metrics.appended(c.events),
                lambda c: self.bus.publish(list(c.events)),
                self.delivery.on_commit,
            ]
        )

    async def asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The main listener: phone ingest first (hot path), everything else to FastAPI.

        `/ws` never gets here: the HTTP protocol hands its upgrade to the WSI service.
        """
        if self.proxies:
            client = scope.get("client")
            if client:  # seen from here on as the client the trusted proxy forwarded for
                scope["client"] = (self.proxies.client(client[0], scope["headers"]), client[1])
        if scope["type"] == "http" and self.ingest.is_phone(
            scope["method"],
            scope["path"],
            scope.get("raw_path") or b"",
            scope.get("query_string", b""),
        ):
            await self.ingest(scope, receive, send)  # phones, and the 414 of a long URL
            return
        await self.api(scope, receive, send)
