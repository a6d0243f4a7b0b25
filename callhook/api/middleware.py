"""ASGI middleware of the REST API: a request body size limit and request metrics.

Both are plain ASGI (no BaseHTTPMiddleware), so they cost a dict lookup or two per request
and never buffer a response.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from callhook.errors import error_json
from callhook.ingest.routes import Message, Receive, Scope, Send

ASGIApp = Callable[[Scope, Receive, Send], Any]
# A refused body up to this many times the limit is read and dropped, not cut off.
_DRAIN_FACTOR = 16
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


async def _send_413(send: Send, limit: int, *, close: bool) -> None:
    body = error_json("body-too-large", f"request body over {limit} bytes (server.max_body_bytes)")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """413 with a JSON error for a body over `limit` bytes, announced or streamed (chunked).

    A body with Content-Length is refused before it is read. A chunked body is read up to
    the limit here and replayed to the app, so the app never sees a partial body. A refused
    body that is not huge is read and dropped before the answer (uvicorn does it for one
    with Content-Length), so a client that sends its whole body before reading (urllib,
    requests) still gets its 413 instead of a reset; past that the connection is closed.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None and length > self.limit:
            await _send_413(send, self.limit, close=length > _DRAIN_FACTOR * self.limit)
            return
        if length is None and chunked:
            chunks: list[bytes] = []
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    return  # client went away
                more = bool(message.get("more_body", False))
                size += len(message.get("body", b""))
                if size > _DRAIN_FACTOR * self.limit:
                    await _send_413(send, self.limit, close=True)
                    return
                if size <= self.limit:
                    chunks.append(message.get("body", b""))
            if size > self.limit:
                await _send_413(send, self.limit, close=False)
                return
            receive = _replay(b"".join(chunks), receive)
        await self.app(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class ApiMetrics:
    """Prometheus metrics of the REST API and the directory, on the hub's registry."""

    def __init__(self, registry: CollectorRegistry, tenant_count: Callable[[], int]) -> None:
        self.requests = Counter(
            "callhook_api_requests",
            "REST API requests by route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "callhook_api_request_seconds",
            "REST API request latency by route template",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=registry,
        )
        self.tenants = Gauge("callhook_tenants", "Tenants in the directory", registry=registry)
        self.tenants.set_function(lambda: float(tenant_count()))


class RouteTemplates:
    """Maps a request path to its route template, e.g. `/api/v1/tenants/{tenant}/events`.

    Built once, lazily, from the OpenAPI document's paths (in registration order, so the
    first route that would match wins, as in the router): one anchored alternation.
    """

    def __init__(self, paths: Callable[[], list[str]]) -> None:
        self._paths = paths
        self._templates: list[str] | None = None
        self._regex: re.Pattern[str] | None = None

    def match(self, path: str) -> str:
        if self._regex is None:
            self._templates = list(self._paths())
            parts = [
                "(" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(t)) + ")" for t in self._templates
            ]
            self._regex = re.compile("^(?:" + "|".join(parts) + ")$")
        m = self._regex.match(path)
        if m is None or m.lastindex is None or self._templates is None:
            return "other"
        return self._templates[m.lastindex - 1]


class RequestMetrics:
    """Counts requests by route template, so the label set stays bounded whatever paths
    clients send; paths that match no route count as `other`."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, paths: Callable[[], list[str]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = RouteTemplates(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.routes.match(scope["path"])
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
