"""Sends one request through the hub's lean HTTP/1.1 client (http1.py); never raises.

No redirects are followed (a redirect could point anywhere, past the SSRF guard), and at
most `read_limit` bytes of a response are read: enough for the delivery log's excerpt, and
a hostile endpoint cannot make the hub buffer a huge body.
"""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver

from callhook.deliver.http1 import Client, HttpError
from callhook.deliver.payload import Request
from callhook.deliver.targets import GuardedResolver, TargetRefused, check_literal


@dataclass(frozen=True, slots=True)
class Response:
    """What came back: a status (None when no HTTP response arrived) or an error."""

    status: int | None
    latency: float
    error: str = ""
    excerpt: str = ""
    retry_after: str | None = None
    refused: bool = False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


class Sender:
    """The outbound HTTP client. One per hub; per-endpoint limits live in the worker."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        total_timeout: float,
        allow_private: bool,
        read_limit: int = 2048,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.read_limit = read_limit
        self._connect_timeout = connect_timeout
        self._total_timeout = total_timeout
        self._inner_resolver = resolver
        self._ssl = ssl_context
        self._client: Client | None = None
        self._checked: set[str] = set()  # origins that passed check_literal

    async def start(self) -> None:
        self._client = Client(
            connect_timeout=self._connect_timeout,
            total_timeout=self._total_timeout,
            # The SSRF guard sits on the very addresses connections use (DNS rebinding).
            resolver=GuardedResolver(self.allow_private, self._inner_resolver),
            read_limit=self.read_limit,
            ssl_context=self._ssl,
        )

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            await self._client.resolver.close()
            self._client = None

    async def send(self, req: Request) -> Response:
        """One attempt; the result says what happened, exceptions never escape."""
        started = time.monotonic()
        client = self._client
        if client is None:
            return Response(None, 0.0, error="sender closed")
        try:
            self._check(req.url)
            reply = await client.request(req.method, req.url, req.headers, req.body)
        except TargetRefused as exc:
            return Response(None, time.monotonic() - started, error=str(exc), refused=True)
        except (HttpError, OSError, TimeoutError, ValueError) as exc:
            return Response(None, time.monotonic() - started, error=_describe(exc))
        return Response(
            reply.status,
            time.monotonic() - started,
            excerpt=reply.excerpt.decode("utf-8", errors="replace"),
            retry_after=reply.retry_after,
        )

    def _check(self, url: str) -> None:
        """Literal IPs are not resolved, so check those here (once per origin: the host
        part of a URL never holds variables)."""
        slash = url.find("/", url.find("//") + 2)
        origin = url if slash < 0 else url[:slash]
        if origin in self._checked:
            return
        check_literal(url, self.allow_private)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked.add(origin)
