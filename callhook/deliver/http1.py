"""A lean HTTP/1.1 client for webhook attempts: keep-alive connections per origin, httptools.

Why not aiohttp's client (used before): measured on this project's 2-core machines against
the same sink, one POST cost ~110 µs of CPU through `ClientSession.request` and ~18 µs here,
and a hub delivering webhooks spends most of its core sending them (bench/README.md). A
webhook attempt needs little of a general client: one request, the status, `Retry-After`
and the first `read_limit` bytes of the body; no redirects, cookies, proxies or
decompression. Responses are parsed by httptools (llhttp, the parser uvicorn uses).

Bounds, because the other side may be hostile: the status line and headers may take at
most `MAX_HEAD` bytes, at most `read_limit` body bytes are kept (the connection is then
dropped rather than drained), and a whole attempt (connecting included) takes at most
`total_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

import httptools
from aiohttp.abc import AbstractResolver

MAX_HEAD = 64 * 1024
_SAFE = "!#$%&'()*+,/:;=?@[]~-._"  # kept as they are when a target must be percent-encoded


class HttpError(Exception):
    """The exchange failed after connecting (closed early, unreadable response ...)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A final response: its status, `Retry-After` and the first bytes of the body."""

    status: int
    excerpt: bytes
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class Origin:
    """What a URL tells the client: where to connect, and the request line's target."""

    key: tuple[str, str, int]  # scheme, host, port: one pool of connections each
    host: str
    port: int
    tls: bool
    host_header: str
    target: str


def parse(url: str) -> Origin:
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if tls else 80)
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not target.isascii() or any(c <= " " or c == "\x7f" for c in target):
        target = quote(target, safe=_SAFE)
    return Origin((parts.scheme, host, port), host, port, tls, host_header, target)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, read_limit: int) -> None:
        self.read_limit = read_limit
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Reply] | None = None
        self.closed = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.body = bytearray()
        self.retry_after: str | None = None
        self.head_bytes = 0
        self.in_head = True
        self.delimited = False  # Content-Length or chunked: the body does not end at close
        self.keep = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # nothing asked: a server talking out of turn
            self.close()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HttpError("the server switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"unreadable response: {exc}"))
            return
        if self.in_head and self.waiter is not None:
            self.head_bytes += len(data)  # still no end of the head in sight
            if self.head_bytes > MAX_HEAD:
                self._fail(HttpError(f"response head over {MAX_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.waiter is None or self.waiter.done():
            return
        if not self.in_head and not self.delimited:
            self.keep = False  # a body that ends when the connection does (RFC 9112 6.3)
            self._done()
        else:
            self._fail(HttpError("the server closed the connection before answering"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._reset()

    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower == b"retry-after":
            self.retry_after = value.decode("latin-1")
        elif lower == b"content-length" or lower == b"transfer-encoding":
            self.delimited = True

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.status = self.parser.get_status_code()

    def on_body(self, chunk: bytes) -> None:
        if self.waiter is None:
            return
        room = self.read_limit - len(self.body)
        if len(chunk) < room:
            self.body += chunk
            return
        self.body += chunk[:room]
        self.keep = False  # the rest is not read: the connection cannot be reused
        self._done()

    def on_message_complete(self) -> None:
        if 100 <= self.status < 200:
            return  # informational (100 Continue ...): the final response follows
        if self.waiter is not None:
            self.keep = self.keep and self.parser.should_keep_alive()
            self._done()

    # the client's side
    def send(self, data: bytes) -> asyncio.Future[Reply]:
        if self.transport is None:
            raise HttpError("not connected")
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self._reset()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def _done(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Reply(self.status, bytes(self.body), self.retry_after))
        if not self.keep:
            self.close()

    def _fail(self, exc: BaseException) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """Keep-alive pools per origin (no global cap: callers bound their own concurrency)."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        total_timeout: float,
        resolver: AbstractResolver,
        read_limit: int = 2048,
        keepalive: float = 30.0,
        max_idle: int = 100,
        ssl_context: ssl.SSLContext | None = None,
        dns_ttl: float = 10.0,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.resolver = resolver
        self.read_limit = read_limit
        self.keepalive = keepalive
        self.max_idle = max_idle
        self.dns_ttl = dns_ttl
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._dns: dict[tuple[str, int], tuple[float, list[tuple[str, int]]]] = {}
        self._origins: dict[str, Origin] = {}
        self._closed = False

    def origin(self, url: str) -> Origin:
        """Parsed once per URL (a webhook's never changes)."""
        o = self._origins.get(url)
        if o is None:
            if len(self._origins) > 10_000:
                self._origins.clear()
            o = self._origins[url] = parse(url)
        return o

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> Reply:
        """One exchange. Raises TimeoutError, OSError (connecting, TLS, the resolver's
        TargetRefused), HttpError or ValueError (a header that would split the request)."""
        o = self.origin(url)
        lines = [f"{method} {o.target} HTTP/1.1\r\nHost: {o.host_header}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"header {name!r} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        if body is not None or method == "POST":
            lines.append(f"Content-Length: {len(body) if body else 0}\r\n")
        lines.append("\r\n")
        data = "".join(lines).encode()
        if body:
            data += body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        conn = self._idle_connection(o.key) or await self._connect(o, deadline)
        waiter = conn.send(data)
        timer = loop.call_at(deadline, _expire, conn)
        try:
            reply = await waiter
        except BaseException:
            conn.close()  # cancelled or failed: the rest of its answer must not be read
            raise
        finally:
            timer.cancel()
        if not conn.closed and not self._closed:
            self._release(o.key, conn)
        return reply

    def _idle_connection(self, key: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    def _release(self, key: tuple[str, str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        conn.idle_timer = asyncio.get_running_loop().call_later(self.keepalive, conn.close)
        idle.append(conn)

    async def _addresses(self, host: str, port: int) -> list[tuple[str, int]]:
        try:
            ipaddress.ip_address(host)
            return [(host, port)]  # a literal: the caller checked it (check_literal)
        except ValueError:
            pass
        now = time.monotonic()
        cached = self._dns.get((host, port))
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self.resolver.resolve(host, port, family=socket.AF_UNSPEC)
        addresses = [(str(r["host"]), int(r["port"])) for r in found]
        if len(self._dns) > 10_000:
            self._dns.clear()
        self._dns[(host, port)] = (now + self.dns_ttl, addresses)
        return addresses

    async def _connect(self, o: Origin, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        timeout = min(self.connect_timeout, deadline - loop.time())
        async with asyncio.timeout(timeout):
            addresses = await self._addresses(o.host, o.port)
            return await _first_connection(self, o, addresses)

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


async def _first_connection(
    client: Client, o: Origin, addresses: Sequence[tuple[str, int]]
) -> _Connection:
    """Try the addresses in turn; the last error if none takes the connection."""
    loop = asyncio.get_running_loop()
    error: OSError = OSError(f"{o.host} has no address")
    for host, port in addresses:
        try:
            _t, conn = await loop.create_connection(
                lambda: _Connection(client.read_limit),
                host,
                port,
                ssl=client.ssl_context() if o.tls else None,
                server_hostname=o.host if o.tls else None,
            )
        except OSError as exc:
            error = exc
            continue
        return conn
    raise error


def _expire(conn: _Connection) -> None:
    conn._fail(TimeoutError())
