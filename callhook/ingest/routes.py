"""The phone ingest endpoint: a lean ASGI handler, dispatched ahead of FastAPI (it is the hot path).

Phones do not retry and ignore the response, so the one thing that matters is that an
acknowledged request is durable: we answer only after the event log committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from callhook.directory import Tenant
from callhook.errors import error_json
from callhook.events import Event
from callhook.ingest.action_url import MAX_URL_BYTES, IngestError, parse_request, target_length
from callhook.ingest.model import ParsedRequest
from callhook.limits import Limiter
from callhook.limits.local import LocalLimiter
from callhook.pipeline import Intake, Pending
from callhook.proxies import TrustedProxies
from callhook.traffic_log import TrafficLog

log = logging.getLogger("callhook.ingest")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_FORM_BODY = 64 * 1024
_EQUALS = ord("=")


# The dashboard at `/` reads no query: a token or an event pair there is a phone's.
_PHONE_QUERY = re.compile(rb"(?:^|&)(?:token|event)=", re.IGNORECASE)
# A `%` not followed by two hex digits: no route of the hub's has one; a phone's URL that
# cannot be decoded is answered 400 by the ingest endpoint, not 404 by the API.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


class PhoneTargets:
    """Tells a phone's request on the main port from one for the hub's own routes.

    The hub's own paths are derived from the routes it registers (`from_paths`): a route's
    first path segment is the hub's (`/api/...` -> `/api/`), and so is a one-segment route
    (`/healthz`). Any other path carrying `key=value` pairs, in the path or in the query
    (Yealink's `http://srv/path?name=$var`), is a phone's; so is `/` with a `token` or
    `event` pair, a form POST to `/`, and a URL too long (414) or unreadable (400).
    """

    def __init__(self, paths: frozenset[str], prefixes: tuple[str, ...]) -> None:
        self.paths = paths
        self.prefixes = prefixes

    @classmethod
    def from_paths(cls, routes: Iterable[str], mounts: Iterable[str] = ()) -> PhoneTargets:
        """`routes`: every registered route path (templates as `/a/{b}`); `mounts`: paths
        under which an application serves everything (`/static`)."""
        paths: set[str] = set()
        prefixes: set[str] = set()
        for route in routes:
            first, sep, _ = route[1:].partition("/")
            if "{" in first:  # a parameter at the top would own every path: not ours alone
                continue
            if sep:
                prefixes.add(f"/{first}/")
            else:
                paths.add(route)
        for mount in mounts:
            paths.add(mount)
            prefixes.add(mount.rstrip("/") + "/")
        return cls(frozenset(paths), tuple(sorted(prefixes)))

    def __call__(self, method: str, path: str, raw_path: bytes, query_string: bytes) -> bool:
        """Whether a request is a phone's (by its method and decoded `path`)."""
        if path.startswith("/ingest/"):
            return True
        if path == "/":
            if method == "POST" or _PHONE_QUERY.search(query_string):
                return True
        elif (
            path not in self.paths
            and not path.startswith(self.prefixes)
            and ("=" in path or _EQUALS in query_string or _BAD_ESCAPE.search(raw_path))
        ):
            return True
        # Longer targets go to the ingest endpoint, which answers 414.
        return target_length(raw_path, query_string) > MAX_URL_BYTES


_TOO_MANY_TOKENS = error_json(
    "too-many-unknown-tokens", "too many unknown ingest tokens from this address; wait a minute"
)


class TenantResolver:
    """Maps an ingest token, or a source address for open ingest, to a tenant."""

    def __init__(self) -> None:
        self.by_token: dict[str, Tenant] = {}
        self.open: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Tenant]] = []

    def load(self, tenants: dict[str, Tenant]) -> None:
        self.by_token = {t.ingest_token: t for t in tenants.values() if t.ingest_token}
        self.open = [
            (ipaddress.ip_network(net, strict=False), t)
            for t in tenants.values()
            for net in t.open_ingest_networks
        ]

    def by_source(self, ip: str) -> Tenant | None:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        for net, tenant in self.open:
            if addr.version == net.version and addr in net:
                return tenant
        return None


@dataclass(slots=True)
class Accepted:
    """A request correlated and queued for commit: answer once `done` completes."""

    parsed: ParsedRequest
    tenant: Tenant
    events: list[Event]  # as correlated (not yet stored)
    queued: Pending
    started: float  # time.perf_counter() when the request was read
    source_ip: str = ""

    @property
    def done(self) -> asyncio.Future[Any]:
        return self.queued.done


Answer = tuple[int, bytes]  # status, JSON body


class IngestEndpoint:
    """Every Action URL request shape: `begin()` up to the queued commit, then `finish()`.

    The two steps serve both the ASGI app (POST bodies, any server) and the HTTP protocol's
    callback fast path for GET/HEAD (ingest/fastpath.py), so both answer alike.
    """

    def __init__(
        self,
        pipeline: Intake,
        resolver: TenantResolver,
        metrics: Any = None,
        traffic: TrafficLog | None = None,
        *,
        proxies: TrustedProxies | None = None,
        unknown_tokens: Limiter | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.resolver = resolver
        self.metrics = metrics
        self.traffic = traffic or TrafficLog()
        self.proxies = proxies or TrustedProxies(())
        # Which requests are phones': set by the Hub once its routes exist.
        self.is_phone = PhoneTargets.from_paths(["/ws"])
        # Token guessing: unknown tokens per source address ([auth] in the config).
        self.unknown_tokens: Limiter = unknown_tokens or LocalLimiter(30, 60.0)

    def begin(
        self,
        method: str,
        raw_path: bytes,
        query_string: bytes,
        body: bytes,
        content_type: str,
        user_agent: str,
        source_ip: str,
    ) -> Answer | Accepted:
        """Parse, resolve the tenant, correlate and queue: an answer now, or Accepted."""
        started = time.perf_counter()
        try:
            parsed = parse_request(method, raw_path, query_string, body, content_type, user_agent)
        except IngestError as exc:
            self.traffic.phone_refused(
                source_ip, exc.status, exc.code, detail=exc.message, user_agent=user_agent[:80]
            )
            return exc.status, error_json(exc.code, exc.message)
        if parsed.token is not None and self.unknown_tokens.blocked(source_ip):
            # Answered alike for a right token, so a guesser learns nothing more; phones
            # at other addresses pay one dict lookup for this.
            self.traffic.phone_refused(source_ip, 429, "too-many-unknown-tokens")
            if self.metrics is not None:
                self.metrics.auth.refused.labels("ingest", "rate-limited").inc()
            return 429, _TOO_MANY_TOKENS
        tenant = self._tenant(parsed.token, source_ip)
        if tenant is None:
            if parsed.token is not None:
                self.unknown_tokens.failed(source_ip)
            reason = "no-token" if parsed.token is None else "unknown-token"
            self.traffic.phone_refused(
                source_ip, 404, reason, event=parsed.event_name or "", user_agent=user_agent[:80]
            )
            if parsed.token is None:
                msg = f"the URL has no ingest token and open ingest is not allowed from {source_ip}"
                return 404, error_json("no-token", msg)
            return 404, error_json("unknown-token", "unknown ingest token")
        events, queued = self.pipeline.accept(tenant, parsed, source_ip)
        return Accepted(parsed, tenant, events, queued, started, source_ip)

    def finish(self, accepted: Accepted) -> Answer:
        """The answer to an accepted request, once its batch committed (or failed)."""
        parsed = accepted.parsed
        events = accepted.queued.committed()
        if events is None:  # not stored (logged)
            return 503, error_json("storage-unavailable", "try again")
        if self.metrics is not None:
            self.metrics.ingested(
                accepted.tenant.name,
                parsed.event or "unrecognised",
                time.perf_counter() - accepted.started,
            )
        keys = [e.key for e in events]
        # A known event stored raw: the correlator failed on it (pipeline.accept).
        kept_raw = bool(parsed.event) and keys == ["action_url"]
        result: dict[str, Any] = {
            "status": "ok" if parsed.event and not kept_raw else "accepted",
            "event": parsed.event or parsed.event_name or "",
        }
        if self.pipeline.answers_with_events:
            result["events"] = keys
            result["seq"] = events[-1].seq if events else None
        else:  # a cluster node: stored in the inbox, correlated next by the tenant's owner
            result["queued"] = True
        hints = events[0].body.get("hints", ()) if kept_raw else parsed.hints
        if hints:
            result["hints"] = list(hints)
        if parsed.event:
            self.traffic.phone_accepted(
                accepted.source_ip,
                accepted.tenant.name,
                parsed.event,
                events=result.get("events", []),
                seq=result.get("seq"),
            )
        else:
            self.traffic.phone_unknown_event(
                accepted.source_ip, accepted.tenant.name, parsed.event_name or ""
            )
        return 200 if result["status"] == "ok" else 202, orjson.dumps(result)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        head = method == "HEAD"
        client = scope.get("client")
        source = client[0] if client else ""
        if method not in ("GET", "HEAD", "POST"):
            self.traffic.phone_refused(source, 405, "method-not-allowed", method=method[:16])
            await _respond(send, 405, error_json("method-not-allowed", "use GET"), head)
            return
        body = b""
        content_type, user_agent = request_headers(scope["headers"])
        if method == "POST":
            try:
                body = await _read_body(receive, MAX_FORM_BODY)
            except ValueError:
                self.traffic.phone_refused(source, 413, "body-too-large")
                await _respond(send, 413, error_json("too-large", "body over 64 KiB"), head)
                return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        outcome = self.begin(
            method,
            raw_path,
            scope.get("query_string", b""),
            body,
            content_type,
            user_agent,
            client[0] if client else "",
        )
        if isinstance(outcome, Accepted):
            with contextlib.suppress(Exception):
                await asyncio.shield(outcome.done)  # shared by the batch: never cancel it
            outcome = self.finish(outcome)
        await _respond(send, outcome[0], outcome[1], head)

    def _tenant(self, token: str | None, source_ip: str) -> Tenant | None:
        if token is not None:
            return self.resolver.by_token.get(token)
        return self.resolver.by_source(source_ip)


def request_headers(headers: Iterable[tuple[bytes, bytes]]) -> tuple[str, str]:
    """(content type, user agent) of a request's ASGI headers."""
    content_type = user_agent = ""
    for name, value in headers:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
    return content_type, user_agent


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ValueError("body too large")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _respond(send: Send, status: int, body: bytes, head: bool = False) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
