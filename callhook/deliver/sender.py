"""Sends one request over the hub's single pooled aiohttp session; never raises.

No redirects are followed (a redirect could point anywhere, past the SSRF guard), and at
most `read_limit` bytes of a response are read: enough for the delivery log's excerpt, and
a hostile endpoint cannot make the hub buffer a huge body.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

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
    ) -> None:
        self.allow_private = allow_private
        self.read_limit = read_limit
        self._timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self._checked: set[str] = set()  # origins that passed check_literal
        self._urls: dict[str, URL] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            # No global cap: a shared pool limit would let one hung endpoint starve the
            # others. Concurrency is bounded per endpoint by the worker instead.
            limit=0,
            resolver=GuardedResolver(self.allow_private),
            ttl_dns_cache=10,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            # No cookies: one receiver must not set what is sent to another (all endpoints
            # share this session), and jar lookups cost on every request.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, req: Request) -> Response:
        """One attempt; the result says what happened, exceptions never escape."""
        started = time.monotonic()
        session = self._session
        if session is None:
            return Response(None, 0.0, error="sender closed")
        try:
            self._check(req.url)
            async with session.request(
                req.method,
                self._url(req.url),
                data=req.body,
                headers=req.headers,
                allow_redirects=False,
            ) as resp:
                latency = time.monotonic() - started
                excerpt = await self._read_excerpt(resp)
                return Response(
                    resp.status,
                    latency,
                    excerpt=excerpt,
                    retry_after=resp.headers.get("Retry-After"),
                )
        except TargetRefused as exc:
            return Response(None, time.monotonic() - started, error=str(exc), refused=True)
        except aiohttp.ClientConnectorError as exc:
            refused = isinstance(exc.os_error, TargetRefused)
            error = str(exc.os_error) if refused else _describe(exc)
            return Response(None, time.monotonic() - started, error=error, refused=refused)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
            return Response(None, time.monotonic() - started, error=_describe(exc))

    def _url(self, url: str) -> URL:
        """Parsed once per URL (a webhook's never changes); already percent-encoded."""
        parsed = self._urls.get(url)
        if parsed is None:
            if len(self._urls) > 10_000:
                self._urls.clear()
            parsed = self._urls[url] = URL(url, encoded=True)
        return parsed

    def _check(self, url: str) -> None:
        """aiohttp skips the resolver for literal IPs, so check those here (once per origin:
        the host part of a URL never holds variables)."""
        slash = url.find("/", url.find("//") + 2)
        origin = url if slash < 0 else url[:slash]
        if origin in self._checked:
            return
        check_literal(url, self.allow_private)
        if len(self._checked) > 10_000:
            self._checked.clear()
        self._checked.add(origin)

    async def _read_excerpt(self, resp: aiohttp.ClientResponse) -> str:
        if resp.content_length is not None and resp.content_length <= self.read_limit:
            return (await resp.read()).decode("utf-8", errors="replace")  # the usual case
        buf = bytearray()
        content = resp.content
        while len(buf) < self.read_limit:
            chunk = await content.read(self.read_limit - len(buf))
            if not chunk:
                break
            buf += chunk
        if not content.at_eof():
            # Unread body left: drop this connection rather than drain an unbounded body.
            resp.close()
        return bytes(buf).decode("utf-8", errors="replace")


async def close_quietly(sender: Sender) -> None:
    """Close the session, giving TLS transports their moment to shut down."""
    await sender.close()
    await asyncio.sleep(0)
