"""The WSI service: listener lifecycle, the subscription index, fan-out of committed events.

Built by the Hub (composition root) from the collaborators it needs; subscribes to the bus,
so subscribers only ever see committed events, in commit order.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge

from callhook.bus import Bus
from callhook.config import Settings
from callhook.connections import ConnectionLimits
from callhook.directory import Tenant
from callhook.events import Event
from callhook.limits.node import Limits
from callhook.ops import AuthMetrics
from callhook.proxies import TrustedProxies
from callhook.store.records import StoredEvent
from callhook.traffic_log import TrafficLog
from callhook.wsi.auth import Authenticator, Passwords, Tickets
from callhook.wsi.listener import WsiConnection
from callhook.wsi.permissions import ALL, EXT, Entry, Principal
from callhook.wsi.router import Router
from callhook.wsi.session import GOING_AWAY, Outgoing, Session

log = logging.getLogger("callhook.wsi")

# Writing to a socket costs a syscall (and, on loopback, the receiver's work too): several
# µs, whatever the size. So under load a connection's frames are written together: at most
# one flush per FLUSH_INTERVAL, and never more than half of the loop's time spent flushing
# (a flush to thousands of subscribers takes milliseconds; the pause after it lets the
# events of that time gather). The delay this adds is capped by MAX_FLUSH_DELAY.
FLUSH_INTERVAL = 0.002
MAX_FLUSH_DELAY = 0.02


class TenantState(Protocol):
    """What a snapshot reads of a tenant's live state."""

    def presence(self, tenant: str, extension: str) -> dict[str, Any]: ...

    def active_calls(self, tenant: str) -> list[dict[str, Any]]: ...


class StateView(Protocol):
    """Where a tenant's live state is (the correlator; on a cluster node that does not own
    the tenant, the snapshots its owner committed)."""

    async def of(self, tenant: str) -> TenantState: ...


class LogReader(Protocol):
    """The event log's read side: the newest seq, and pages for `since_seq` replay."""

    async def last_seq(self, tenant: str) -> int: ...

    async def read_stored(
        self, tenant: str, since: int, keys: Sequence[str] | None, limit: int
    ) -> list[StoredEvent]: ...


class StoreView(Protocol):
    @property
    def directory(self) -> Passwords: ...


class HubPort(Protocol):
    """The parts of the Hub the WSI service uses (read-only)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def tenants(self) -> dict[str, Tenant]: ...
    @property
    def bus(self) -> Bus: ...
    @property
    def log(self) -> LogReader: ...
    @property
    def state(self) -> StateView: ...
    @property
    def store(self) -> StoreView: ...
    @property
    def connections(self) -> ConnectionLimits: ...
    @property
    def limits(self) -> Limits: ...


def _host_port(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class WsiService:
    """Owns WSI sessions on both carriers and routes every committed event to them."""

    def __init__(
        self,
        hub: HubPort,
        registry: CollectorRegistry | None = None,
        tickets: Tickets | None = None,
        *,
        traffic: TrafficLog | None = None,
        auth_metrics: AuthMetrics | None = None,
        proxies: TrustedProxies | None = None,
    ) -> None:
        # The WSI listener's clients may come through a reverse proxy too (its handshake).
        self.proxies = proxies or TrustedProxies(())
        self.settings = hub.settings
        self.tenants: Mapping[str, Tenant] = hub.tenants
        self._bus = hub.bus
        self.log = hub.log
        self._state = hub.state
        self.limits = hub.connections  # shared with the main port's HTTP connections
        self.header_timeout = hub.settings.connections.header_timeout  # for the handshake
        self.max_queue_bytes = hub.settings.wsi.max_queue_bytes
        self.ping_interval = hub.settings.wsi.ping_interval
        self.router: Router[Session] = Router()
        self.sessions: set[Session] = set()
        self.dirty: list[WsiConnection] = []  # connections with coalesced frames to flush
        limits = hub.settings.auth
        self.auth = Authenticator(
            hub.tenants,
            hub.store.directory,
            by_account=hub.limits.wsi_account,
            by_address=hub.limits.wsi_source,
            concurrency=limits.hash_concurrency,
            queue=limits.hash_queue,
            tickets=tickets,
            traffic=traffic,
            metrics=auth_metrics,
        )
        if tickets is not None:
            tickets.attach("/ws")  # the dashboard may now use /ws instead of polling
        self._server: asyncio.Server | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._last_flush = 0.0
        self._flush_cost = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port: int | None = None
        r = registry if registry is not None else CollectorRegistry()
        self._m_conns = Gauge("callhook_wsi_connections", "Open WSI sessions", registry=r)
        self._m_conns.set_function(lambda: len(self.sessions))
        self._m_sent = Counter(
            "callhook_wsi_deliveries", "Events queued to subscribers", registry=r
        )
        self._m_writes = Counter(
            "callhook_wsi_writes", "Coalesced writes to subscribers (one syscall each)", registry=r
        )
        self.slow_consumers = Counter(
            "callhook_wsi_slow_consumers", "Subscribers closed for not keeping up", registry=r
        )
        self.invalid_utf8 = Counter(
            "callhook_wsi_invalid_utf8",
            "Connections closed (1007) for a text frame that is not UTF-8",
            registry=r,
        )

    # lifespan --------------------------------------------------------------------------
    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen on `sock` (bound beforehand) or else on `server.wsi_listen`, if set."""
        self._loop = asyncio.get_running_loop()
        self._bus.subscribe(self.publish)
        listen = self.settings.server.wsi_listen
        if listen:
            tls = self._tls()
            # A TLS handshake happens before the connection is counted or timed by us:
            # it gets as long as an HTTP request's headers, not asyncio's 60 s.
            handshake = self.header_timeout if tls is not None else None
            if sock is not None:
                self._server = await self._loop.create_server(
                    lambda: WsiConnection(self),
                    sock=sock,
                    ssl=tls,
                    backlog=4096,
                    ssl_handshake_timeout=handshake,
                )
            else:
                host, port = _host_port(listen)
                self._server = await self._loop.create_server(
                    lambda: WsiConnection(self),
                    host,
                    port,
                    ssl=tls,
                    backlog=4096,
                    ssl_handshake_timeout=handshake,
                )
            self.port = self._server.sockets[0].getsockname()[1]
            log.info("wsi listening", extra={"listen": listen, "tls": tls is not None})
        self._timer = self._loop.call_later(self.ping_interval, self._tick)

    async def stop(self) -> None:
        self.auth.slots.close()
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        for session in list(self.sessions):
            session.close(GOING_AWAY, "server shutting down")  # each flushes what it has
        self.dirty.clear()
        if self._server is not None:
            # Closing handshakes get a short grace, then wait_closed() returns.
            try:
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            except TimeoutError:
                pass

    def _tls(self) -> ssl.SSLContext | None:
        server = self.settings.server
        if not (server.tls_cert and server.tls_key):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(server.tls_cert, server.tls_key)
        return ctx

    def upgraded(self) -> WsiConnection:
        """The protocol for `/ws` on the main port, taking over an admitted connection."""
        return WsiConnection(self, counted=True)

    # fan-out: the hot path -------------------------------------------------------------
    def publish(self, events: list[Event]) -> None:
        """Bus subscriber: route each committed event, serialise it once, queue its frame."""
        match = self.router.match
        slow: list[tuple[Session, int]] = []
        sent = 0
        for ev in events:
            subs = match(ev.tenant, ev.key, ev.extensions, ev.queue)
            if not subs:
                continue
            out = Outgoing(ev)
            for s in subs:
                if ev.seq <= s.floor:
                    continue  # its replay read it from the log already
                if not s.deliver(out):
                    slow.append((s, ev.seq))
            sent += len(subs)
        for s, seq in slow:  # closing changes the index, so only after routing
            s.close_slow(seq)
        if sent:
            self._m_sent.inc(sent)
        if self.dirty and self._flush_handle is None and self._loop is not None:
            # Coalesce: at most one flush per FLUSH_INTERVAL. A quiet hub flushes at the next
            # loop turn; a busy one writes many events per connection per syscall.
            gap = min(max(FLUSH_INTERVAL, self._flush_cost), MAX_FLUSH_DELAY)
            wait = self._last_flush + gap - self._loop.time()
            if wait > 0:
                self._flush_handle = self._loop.call_later(wait, self._flush)
            else:
                self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        assert self._loop is not None
        started = self._loop.time()
        dirty, self.dirty = self.dirty, []
        for conn in dirty:
            conn.flush_checked()
        if dirty:
            self._m_writes.inc(len(dirty))
        self._last_flush = self._loop.time()
        self._flush_cost = self._last_flush - started

    # shared timer ----------------------------------------------------------------------
    def _tick(self) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.ping_interval, self._tick)
        for session in list(self.sessions):
            try:
                session.tick()
            except Exception:  # one broken connection must not stop the pings of others
                log.exception("wsi tick failed")

    # directory changes ---------------------------------------------------------------
    async def directory_changed(self) -> None:
        """Re-check every open session against the directory as it is now: a deleted
        account or a changed password closes it, subscriptions narrow to what is still
        allowed (docs/api.md: changes apply at once, to open sessions too)."""
        sessions = [s for s in self.sessions if s.principal is not None and not s.closed]
        accounts = {
            (p.tenant, p.extension)
            for p in (s.principal for s in sessions)
            if p is not None and p.credential
        }
        hashes = await self.auth.current_hashes(accounts)
        for session in sessions:
            who = session.principal
            if who is None:
                continue
            stored = hashes.get((who.tenant, who.extension)) if who.credential else None
            try:
                session.recheck(self.tenants.get(who.tenant), stored)
            except Exception:  # one broken connection must not keep others' rights
                log.exception("wsi recheck failed")

    # snapshot --------------------------------------------------------------------------
    async def snapshot(self, who: Principal, entries: frozenset[Entry]) -> bytes:
        """Presence and active calls of the extensions `who` follows, as one message."""
        tenant = self.tenants.get(who.tenant)
        followed: set[str] = {v for _, scope, v in entries if scope == EXT}
        if tenant is not None and any(scope == ALL for _, scope, _ in entries):
            followed.update(tenant.extensions)
        as_of = await self.log.last_seq(who.tenant)
        live = await self._state.of(who.tenant)  # read after as_of: no older than it
        calls = [
            c
            for c in live.active_calls(who.tenant)
            if followed.intersection(c.get("extensions") or ())
        ]
        presence = [live.presence(who.tenant, ext) for ext in sorted(followed)]
        body = {
            "event_type": "snapshot",
            "topic": "snapshot",
            "as_of_seq": as_of,
            "presence": presence,
            "active_calls": calls,
        }
        return orjson.dumps(body, default=str)
