"""A small HTTP/1.1 client on asyncio streams: one persistent connection per phone.

A general client (aiohttp) would re-encode the request target; phones write theirs byte for
byte (`GET /token=...&event=Incoming%20Call&... HTTP/1.1`), and so does this one. It reads
`Content-Length` and chunked bodies, reconnects when the server closed an idle keep-alive
connection, and raises `HttpError` for anything else that goes wrong on the wire.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
# Servers drop idle keep-alive connections (uvicorn after 5 s): reconnect before that.
IDLE_REUSE = 4.0


class HttpError(Exception):
    """A request that got no HTTP response (connection refused, reset, timed out, garbled)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where the hub listens, from a base URL such as `http://127.0.0.1:8080/prefix`."""

    scheme: str
    host: str
    port: int
    prefix: str  # path prefix without the trailing slash ("" at the root)

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """Parse `url`; ValueError if it is not an http(s) URL with a host."""
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"bad port in {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class Connection:
    """One keep-alive connection; requests on it are sent one at a time, like a phone."""

    def __init__(self, endpoint: Endpoint, user_agent: str, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.user_agent = user_agent
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._used_at = 0.0

    async def get(self, target: str) -> tuple[int, bytes]:
        """`GET target HTTP/1.1`: (status, body). Retries once on a stale kept-alive socket."""
        stale_ok = self._writer is not None
        if stale_ok and time.monotonic() - self._used_at > IDLE_REUSE:
            await self.close()
            stale_ok = False
        try:
            return await asyncio.wait_for(self._exchange(target), self.timeout)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            await self.close()
            if not stale_ok:
                raise HttpError(_describe(exc)) from None
        except (OSError, TimeoutError, asyncio.LimitOverrunError, ValueError) as exc:
            await self.close()
            raise HttpError(_describe(exc)) from None
        try:  # the server had closed the kept-alive connection: once more on a new one
            return await asyncio.wait_for(self._exchange(target), self.timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            await self.close()
            raise HttpError(_describe(exc)) from None

    async def _exchange(self, target: str) -> tuple[int, bytes]:
        if self._writer is None:
            ep = self.endpoint
            context = ssl.create_default_context() if ep.scheme == "https" else None
            self._reader, self._writer = await asyncio.open_connection(
                ep.host, ep.port, ssl=context, limit=MAX_HEAD
            )
        reader, writer = self._reader, self._writer
        assert reader is not None
        head = (
            f"GET {self.endpoint.prefix}{target} HTTP/1.1\r\nHost: {self.endpoint.host_header}\r\n"
            f"User-Agent: {self.user_agent}\r\nAccept: */*\r\n\r\n"
        )
        writer.write(head.encode("latin-1"))
        await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/"):
            raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
        status = int(status_line[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        body = await _read_body(reader, headers)
        self._used_at = time.monotonic()
        if headers.get("connection", "").lower() == "close" or status_line[0] == "HTTP/1.0":
            await self.close()
        return status, body

    async def close(self) -> None:
        """Close the socket (and wait for it, so no transport outlives its loop)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # trailers are not sent by the hub
                return b"".join(chunks)
            if size > MAX_BODY:
                raise ValueError("response body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    length = headers.get("content-length")
    if length is None:  # the server closes the connection to end the body
        headers["connection"] = "close"
        body: list[bytes] = []
        size = 0
        while chunk := await reader.read(65536):
            size += len(chunk)
            if size > MAX_BODY:
                raise ValueError("response body too large")
            body.append(chunk)
        return b"".join(body)
    n = int(length)
    if n > MAX_BODY:
        raise ValueError("response body too large")
    return await reader.readexactly(n)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed mid-response"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__
