"""The phone ingest endpoint: a lean ASGI handler, dispatched ahead of FastAPI (STYLE stack).

Phones do not retry and ignore the response, so the one thing that matters is that an
acknowledged request is durable: we answer only after the event log committed (SPEC §1, §5).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from callhook.directory import Tenant
from callhook.errors import error_json
from callhook.ingest.action_url import IngestError, parse_request
from callhook.pipeline import Pipeline
from callhook.store.sqlite import StoreError

log = logging.getLogger("callhook.ingest")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_FORM_BODY = 64 * 1024


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


class IngestEndpoint:
    """ASGI app for every Action URL request shape."""

    def __init__(self, pipeline: Pipeline, resolver: TenantResolver, metrics: Any = None) -> None:
        self.pipeline = pipeline
        self.resolver = resolver
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        head = method == "HEAD"
        if method not in ("GET", "HEAD", "POST"):
            await _respond(send, 405, error_json("method-not-allowed", "use GET"), head)
            return
        body = b""
        content_type = ""
        user_agent = ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = value.decode("latin-1")
        if method == "POST":
            try:
                body = await _read_body(receive, MAX_FORM_BODY)
            except ValueError:
                await _respond(send, 413, error_json("too-large", "body over 64 KiB"), head)
                return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        try:
            parsed = parse_request(
                method, raw_path, scope.get("query_string", b""), body, content_type, user_agent
            )
        except IngestError as exc:
            await _respond(send, exc.status, error_json(exc.code, exc.message), head)
            return
        client = scope.get("client")
        source_ip = client[0] if client else ""
        tenant = self._tenant(parsed.token, source_ip)
        if tenant is None:
            if parsed.token is None:
                msg = f"the URL has no ingest token and open ingest is not allowed from {source_ip}"
                await _respond(send, 404, error_json("no-token", msg), head)
            else:
                await _respond(send, 404, error_json("unknown-token", "unknown ingest token"), head)
            return
        try:
            events = await self.pipeline.ingest(tenant, parsed, source_ip)
        except StoreError as exc:
            log.error("ingest not stored: %s", exc)
            await _respond(send, 503, error_json("storage-unavailable", "try again"), head)
            return
        if self.metrics is not None:
            self.metrics.ingested(tenant.name, parsed.event or "unrecognised")
        result: dict[str, Any] = {
            "status": "ok" if parsed.event else "accepted",
            "event": parsed.event or parsed.event_name or "",
            "events": [e.key for e in events],
            "seq": events[-1].seq if events else None,
        }
        if parsed.hints:
            result["hints"] = list(parsed.hints)
        await _respond(send, 200 if parsed.event else 202, orjson.dumps(result), head)

    def _tenant(self, token: str | None, source_ip: str) -> Tenant | None:
        if token is not None:
            return self.resolver.by_token.get(token)
        return self.resolver.by_source(source_ip)


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
