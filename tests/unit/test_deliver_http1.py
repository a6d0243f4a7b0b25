"""The webhook sender's HTTP/1.1 client against real servers that answer oddly on purpose.

Each server is a real asyncio TCP (or TLS) listener on a loopback port that reads one
request head (and its body) and writes the bytes a test scripts; the client is the hub's
Sender, so what is checked is what the dispatcher gets back.
"""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from callhook.deliver.payload import Request
from callhook.deliver.sender import Response, Sender

Answer = Callable[[int, bytes], bytes | None]  # (request number, request) -> bytes to write


class Server:
    """Counts connections and requests; answers each request with `answer`'s bytes, then
    closes the connection when the bytes end with `CLOSE` (never answers for None)."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                out = self.answer(len(self.requests), request)
                if out is None:
                    await reader.read()  # never answer; wait until the client gives up
                    return
                writer.write(out.removesuffix(CLOSE))
                await writer.drain()
                if out.endswith(CLOSE):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def url(self, path: str = "/hook", scheme: str = "http") -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"{scheme}://127.0.0.1:{port}{path}"


CLOSE = b"<close>"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Server]]:
    servers: list[asyncio.Server] = []
    made: list[Server] = []

    async def start(answer: Answer, ssl_ctx: ssl.SSLContext | None = None) -> Server:
        s = Server(answer)
        s.server = await asyncio.start_server(s.handle, "127.0.0.1", 0, ssl=ssl_ctx)
        servers.append(s.server)
        made.append(s)
        return s

    yield start  # type: ignore[misc]
    for srv in servers:
        srv.close()
        await srv.wait_closed()
    for s in made:
        for w in s.writers:
            w.close()
    await asyncio.sleep(0.01)


async def send(
    url: str, *, total: float = 2.0, body: bytes | None = b"{}", **kw: object
) -> Response:
    sender = Sender(connect_timeout=1, total_timeout=total, allow_private=True, **kw)  # type: ignore[arg-type]
    await sender.start()
    try:
        return await sender.send(Request("POST" if body is not None else "GET", url, {}, body))
    finally:
        await sender.close()


async def test_keep_alive_reuses_one_connection(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    s = await serve(lambda _n, _r: OK)
    sender = Sender(connect_timeout=1, total_timeout=2, allow_private=True)
    await sender.start()
    try:
        for _ in range(5):
            resp = await sender.send(Request("POST", s.url(), {"x-n": "1"}, b"{}"))
            assert resp.status == 200 and resp.excerpt == "ok"
    finally:
        await sender.close()
    assert s.connections == 1 and len(s.requests) == 5
    head = s.requests[0].decode()
    assert head.startswith("POST /hook HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{s.url().split(':')[2].split('/')[0]}\r\n" in head
    assert "x-n: 1\r\n" in head and head.endswith("Content-Length: 2\r\n\r\n{}")


async def test_a_connection_closed_by_the_server_is_not_reused(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    s = await serve(lambda _n, _r: b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + CLOSE)
    sender = Sender(connect_timeout=1, total_timeout=2, allow_private=True)
    await sender.start()
    try:
        for _ in range(3):
            resp = await sender.send(Request("POST", s.url(), {}, b"{}"))
            assert resp.status == 200, resp
            await asyncio.sleep(0.05)  # the close reaches the client
    finally:
        await sender.close()
    assert s.connections == 3


@pytest.mark.parametrize(
    ("answer", "status", "excerpt"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n",
         200, "ok!!!"),
        (b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy", 503, "busy"),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
         201, ""),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the end" + CLOSE, 200, "until the end"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, ""),
        (b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n",
         302, ""),
    ],
)  # fmt: skip
async def test_responses(
    serve: Callable[..., asyncio.Future[Server]], answer: bytes, status: int, excerpt: str
) -> None:
    s = await serve(lambda _n, _r: answer)
    resp = await send(s.url())
    assert (resp.status, resp.excerpt, resp.error) == (status, excerpt, "")
    assert resp.retry_after == ("7" if status == 503 else None)
    assert len(s.requests) == 1  # a redirect is not followed


async def test_a_huge_body_is_cut_at_the_read_limit(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    big = b"x" * 5_000_000
    s = await serve(
        lambda _n, _r: b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(big) + big
    )
    resp = await send(s.url())
    assert resp.status == 200 and resp.excerpt == "x" * 2048


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"" + CLOSE, "closed the connection before answering"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort" + CLOSE, "closed the connection"),
        (b"SMTP ready\r\n\r\n", "unreadable response"),
        # a head that never ends (the server goes on sending)
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: a\r\n" * 30_000, "response head over"),
        (None, "timeout"),
    ],
)
async def test_failures_are_errors_without_a_status(
    serve: Callable[..., asyncio.Future[Server]], answer: bytes | None, error: str
) -> None:
    s = await serve(lambda _n, _r: answer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await send(s.url(), total=0.5)
    assert resp.status is None and error in resp.error and not resp.refused, resp
    assert loop.time() - started < 2.0


async def test_nothing_listening_is_an_error(serve: Callable[..., asyncio.Future[Server]]) -> None:
    s = await serve(lambda _n, _r: OK)
    url = s.url()
    assert s.server is not None
    s.server.close()
    await s.server.wait_closed()
    resp = await send(url)
    assert resp.status is None and "ConnectionRefused" in resp.error


async def test_a_header_with_a_line_break_is_never_sent(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    s = await serve(lambda _n, _r: OK)
    sender = Sender(connect_timeout=1, total_timeout=2, allow_private=True)
    await sender.start()
    try:
        bad = {"x-note": "a\r\nX-Injected: 1"}
        resp = await sender.send(Request("POST", s.url(), bad, b"{}"))
    finally:
        await sender.close()
    assert resp.status is None and "line break" in resp.error
    assert s.requests == []


async def test_the_target_is_sent_percent_encoded(
    serve: Callable[..., asyncio.Future[Server]],
) -> None:
    s = await serve(lambda _n, _r: OK)
    resp = await send(s.url("/a b/é?q=1 2&r=%41"), body=None)
    assert resp.status == 200
    assert s.requests[0].startswith(b"GET /a%20b/%C3%A9?q=1%202&r=%41 HTTP/1.1\r\n")
    assert b"Content-Length" not in s.requests[0]


def _certificate(work: Path) -> tuple[Path, Path]:
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_is_verified(
    serve: Callable[..., asyncio.Future[Server]], tmp_path: Path
) -> None:
    cert, key = _certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    s = await serve(lambda _n, _r: OK, server_ctx)
    url = s.url(scheme="https")
    refused = await send(url)  # self-signed: not trusted by the system's CAs
    assert refused.status is None and "CERTIFICATE_VERIFY_FAILED" in refused.error
    trusted = await send(url, ssl_context=ssl.create_default_context(cafile=str(cert)))
    assert trusted.status == 200 and trusted.excerpt == "ok"
