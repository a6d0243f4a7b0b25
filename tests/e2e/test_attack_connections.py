"""Attacks on the main port's connections, against a real `callhook serve` over real sockets:
an endless header, idle and slow clients, and connection floods from one or many sources.

Small limits are set in the test config ([connections]) so each attack takes a few seconds;
memory is read from /proc/PID/status, answers and closes from the sockets themselves.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub import Hub
from tests.support.phone import Response, get, parse_response

TOKEN = "gs-7f3a9c"
LIMITS = """
[connections]
max_header_bytes = 4096
header_timeout = 1.0
body_timeout = 1.0
max_open = 40
max_per_source = 16

[auth]
ingest_max_unknown_tokens_per_source = 1000000
"""  # unknown tokens: answered without a commit; their own limit is tested elsewhere
PHONE = f"/token={TOKEN}&event=DND%20On&local=101"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("hub"), extra_config=LIMITS).start()
    try:
        yield h
    finally:
        h.stop()


def rss_kib(h: Hub) -> int:
    assert h.proc is not None
    for line in Path(f"/proc/{h.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def shed(h: Hub) -> dict[str, float]:
    status, text = h.api("GET", "/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "callhook_connections_shed":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    out[sample.labels["reason"]] = sample.value
    return out


def read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    """Everything the hub sends until it closes (or `timeout`)."""
    sock.settimeout(timeout)
    chunks = []
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def connect(h: Hub, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", h.port), timeout=5, source_address=(source, 0))


def phone_ok(h: Hub, source: str = "127.0.0.1") -> Response:
    req = f"GET {PHONE} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n".encode()
    with connect(h, source) as s:
        s.sendall(req)
        return parse_response(read_all(s))


# 17.1: the request line and headers are bounded -------------------------------------------
def test_a_header_over_the_limit_gets_431_and_a_close(hub: Hub) -> None:
    before = shed(hub).get("header_too_large", 0)
    head = f"GET {PHONE} HTTP/1.1\r\nHost: hub\r\nX-Big: ".encode()
    with connect(hub) as s:
        s.sendall(head + b"a" * 6000)  # one read: the hub takes it all, then answers
        r = parse_response(read_all(s))
    assert r.status == 431, r
    assert r.headers["connection"] == "close"
    assert json.loads(r.body)["error"]["code"] == "headers-too-large"
    assert shed(hub)["header_too_large"] == before + 1
    assert phone_ok(hub).status == 200


def test_an_endless_header_costs_no_memory_and_slows_no_phone(hub: Hub) -> None:
    """The reported attack: `X-Big: ` then 150 MiB of `a`, on three connections at once."""
    base = rss_kib(hub)
    head = f"GET {PHONE} HTTP/1.1\r\nHost: hub\r\nX-Big: ".encode()
    chunk = b"a" * 65536
    socks = [connect(hub) for _ in range(3)]
    sent = [0, 0, 0]
    try:
        for s in socks:
            s.sendall(head)
        for _ in range(256):  # up to 16 MiB each; the hub stops reading after 4 KiB
            for i, s in enumerate(socks):
                if sent[i] < 0:
                    continue
                try:
                    s.settimeout(0.5)
                    sent[i] += s.send(chunk)
                except (BrokenPipeError, ConnectionResetError, TimeoutError):
                    sent[i] = -1
            if all(n < 0 for n in sent):
                break
        assert phone_ok(hub, "127.0.0.2").status == 200  # while the attack runs
    finally:
        for s in socks:
            s.close()
    assert all(n < 0 for n in sent), f"the hub kept reading: {sent}"
    assert rss_kib(hub) - base < 10 * 1024


def test_a_header_over_the_limit_on_ws_gets_431(hub: Hub) -> None:
    req = (
        b"GET /ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        b"X-Big: "
    )
    with connect(hub) as s:
        s.sendall(req + b"b" * 6000)
        r = parse_response(read_all(s))
    assert r.status == 431, r


def test_a_long_url_is_still_a_414(hub: Hub) -> None:
    with connect(hub) as s:
        s.sendall(f"GET {PHONE}&x={'y' * 20000} HTTP/1.1\r\n".encode())
        r = parse_response(read_all(s))
    assert r.status == 414, r
    assert json.loads(r.body)["error"]["code"] == "uri-too-long"


# 17.2: idle and slow clients are timed out -----------------------------------------------
@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        (b"", "header_timeout"),
        (b"GET /token=gs-7f3a9c&ev", "header_timeout"),
        (f"GET {PHONE} HTTP/1.1\r\nHost: hub\r\nUser-Ag".encode(), "header_timeout"),
        (
            b"POST /ingest/gs-7f3a9c/dnd_on HTTP/1.1\r\nHost: hub\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 100\r\n\r\nlocal=10",
            "body_timeout",
        ),
    ],
    ids=["nothing", "half-a-request-line", "half-the-headers", "short-body"],
)
def test_a_slow_client_is_answered_408_and_closed(hub: Hub, sent: bytes, reason: str) -> None:
    before = shed(hub).get(reason, 0)
    with connect(hub) as s:
        s.sendall(sent)
        started = time.monotonic()
        raw = read_all(s, timeout=5)
        took = time.monotonic() - started
    assert 0.8 < took < 4, took  # header_timeout / body_timeout = 1 s
    r = parse_response(raw)
    assert r.status == 408, raw
    assert json.loads(r.body)["error"]["code"] == "request-timeout"
    assert shed(hub)[reason] == before + 1


def test_a_keep_alive_client_dripping_its_next_request_is_closed(hub: Hub) -> None:
    with connect(hub) as s:
        s.sendall(f"GET {PHONE} HTTP/1.1\r\nHost: hub\r\n\r\n".encode())
        s.settimeout(5)
        first = s.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first
        started = time.monotonic()
        for part in (b"GET /hea", b"lthz HTT", b"P/1.1\r\nHo"):
            with contextlib.suppress(OSError):
                s.sendall(part)
            time.sleep(0.4)
        rest = read_all(s, timeout=5)
        assert time.monotonic() - started < 4
    assert rest == b"" or rest.startswith(b"HTTP/1.1 408"), rest


def test_a_client_that_does_not_read_its_answers_is_paused_not_timed_out(hub: Hub) -> None:
    """A client pipelining requests without reading its answers: the hub stops reading from
    it (the answers would pile up in memory otherwise), then serves it all once it reads.
    The hub's own pause is not the client's delay: a request it had read only in part when it
    stopped reading is not timed out however long the pause (three header_timeouts here)."""
    request = b"GET /token=nope&event=dnd_on&local=104 HTTP/1.1\r\nHost: hub\r\n\r\n"
    before = shed(hub).get("header_timeout", 0)
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
    s.connect(("127.0.0.1", hub.port))
    try:
        s.setblocking(False)
        chunk, sent, stalled, deadline = request * 200, 0, 0.0, time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                sent += s.send(chunk[sent % len(chunk) :] if sent % len(chunk) else chunk)
                stalled = 0.0
            except BlockingIOError:
                stalled = stalled or time.monotonic()
                if time.monotonic() - stalled > 1.0:
                    break  # the hub stopped reading from us
                time.sleep(0.01)
        assert stalled and time.monotonic() - stalled > 1.0, "the hub kept reading"
        time.sleep(2.0)  # with the 1 s above: three header_timeouts without reading
        whole, cut = divmod(sent, len(request))
        s.setblocking(True)
        s.settimeout(20)
        answered, tail = 0, b""
        while answered < whole:
            data = s.recv(1 << 20)
            assert data, f"closed after {answered} of {whole} answers"
            tail += data
            answered += tail.count(b"HTTP/1.1 404 ")
            tail = tail[-16:]  # a status line may straddle two reads
            answered -= tail.count(b"HTTP/1.1 404 ")
        answered += tail.count(b"HTTP/1.1 404 ")
        assert answered == whole
        s.sendall(request[cut:] if cut else request)  # the last one, whole at last
        last = s.recv(65536)
        assert last.startswith(b"HTTP/1.1 404 "), last
    finally:
        s.close()
    assert shed(hub).get("header_timeout", 0) == before
    assert phone_ok(hub).status == 200


def test_a_client_that_never_reads_its_answers_is_disconnected(tmp_path: Path) -> None:
    """A client that pipelines requests and never reads the answers (a slow-read attack:
    it would hold its socket, and the answers in memory, for ever): once the hub's send
    buffer has been full for `send_timeout` (1 s here) the connection is aborted, counted,
    and its slot is free again."""
    limits = LIMITS.replace("body_timeout = 1.0\n", "body_timeout = 1.0\nsend_timeout = 1.0\n")
    h = Hub(tmp_path, extra_config=limits).start()
    try:
        request = b"GET /token=nope&event=dnd_on&local=104 HTTP/1.1\r\nHost: hub\r\n\r\n"
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        s.connect(("127.0.0.1", h.port))
        s.setblocking(False)
        chunk, sent, cut, deadline = request * 200, 0, False, time.monotonic() + 60
        try:
            while time.monotonic() < deadline and not cut:
                if not select.select([], [s], [], 0.5)[1]:  # the hub is not reading
                    continue
                try:
                    sent += s.send(chunk[sent % len(chunk) :])
                except BlockingIOError:
                    continue
                except (ConnectionResetError, BrokenPipeError):
                    cut = True
        finally:
            s.close()
        assert cut, "the hub kept a client that reads nothing for a minute"
        assert shed(h).get("send_timeout") == 1
        status, text = h.api("GET", "/metrics")
        assert status == 200
        (gauge,) = [
            f for f in text_string_to_metric_families(text) if f.name == "callhook_connections_open"
        ]
        assert gauge.samples[0].value <= 1  # the one asking: the silent reader's slot is free
        assert phone_ok(h).status == 200
    finally:
        h.stop()


# 17.2: connection caps, per source and in total ------------------------------------------
def test_connection_floods_are_shed_with_503_and_phones_elsewhere_still_report(
    hub: Hub,
) -> None:
    before = shed(hub)
    held: list[socket.socket] = []
    try:
        for _ in range(16):  # max_per_source
            held.append(connect(hub, "127.0.0.3"))
        time.sleep(0.2)  # the hub has accepted them all
        with connect(hub, "127.0.0.3") as s:
            r = parse_response(read_all(s))
        assert r.status == 503, r
        assert json.loads(r.body)["error"]["code"] == "unavailable"
        # another source still gets in: the flood from one address stops nobody else
        assert phone_ok(hub, "127.0.0.4").status == 200

        # many sources: the total cap (max_open = 40) answers 503 before files run out
        for i in range(24):
            held.append(connect(hub, f"127.0.1.{i % 2 + 1}"))
        time.sleep(0.2)
        with connect(hub, "127.0.2.1") as s:
            r = parse_response(read_all(s))
        assert r.status == 503, r
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    after = shed(hub)
    assert after["max_per_source"] >= before.get("max_per_source", 0) + 1
    assert after["max_open"] >= before.get("max_open", 0) + 1
    assert phone_ok(hub, "127.0.0.3").status == 200  # freed once they closed
    assert "connection shed" in hub.log_path.read_text()


def test_the_file_limit_is_raised_and_said_at_start(hub: Hub) -> None:
    assert hub.proc is not None
    limits = Path(f"/proc/{hub.proc.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard
    logs = hub.log_path.read_text()
    started = next(json.loads(x) for x in logs.splitlines() if '"callhook started"' in x)
    assert started["file_limit"] == int(soft)
    assert started["max_connections"] == 40


def test_phones_still_report_after_all_of_it(hub: Hub) -> None:
    r = get(hub.port, PHONE)
    assert r.status == 200, r


# The WSI listener shares the caps and the header timeout --------------------------------
def test_the_wsi_listener_sheds_floods_and_silent_handshakes(hub: Hub) -> None:
    before = shed(hub)
    held: list[socket.socket] = []
    try:
        for _ in range(16):  # max_per_source
            held.append(
                socket.create_connection(
                    ("127.0.0.1", hub.wsi_port), timeout=5, source_address=("127.0.0.6", 0)
                )
            )
        time.sleep(0.2)
        with socket.create_connection(
            ("127.0.0.1", hub.wsi_port), timeout=5, source_address=("127.0.0.6", 0)
        ) as s:
            r = parse_response(read_all(s))
        assert r.status == 503, r
        # the silent ones are dropped after header_timeout (1 s): no handshake, no slot
        started = time.monotonic()
        for s in held:
            assert read_all(s, timeout=4) == b""
        assert time.monotonic() - started < 4
    finally:
        for s in held:
            s.close()
    after = shed(hub)
    assert after["max_per_source"] >= before.get("max_per_source", 0) + 1
    assert after["header_timeout"] >= before.get("header_timeout", 0) + 16


def test_1100_idle_connections_under_a_1024_file_limit(tmp_path: Path) -> None:
    """The reported attack: 1,100 silent sockets against a hub limited to 1,024 files. The
    hub answers the ones over its cap with 503 (accept never fails), stays up, and frees the
    silent ones after header_timeout, so phones report again without anyone's help."""
    h = Hub(tmp_path, extra_config="[connections]\nheader_timeout = 2.0\n")
    serve = [sys.executable, "-m", "callhook.cli", "serve", "--config", str(h.config_path)]
    h.start(command=["sh", "-c", 'ulimit -n 1024 && exec "$@"', "sh", *serve])
    held: list[socket.socket] = []
    refused = 0
    try:
        logs = h.log_path.read_text()
        started = next(json.loads(x) for x in logs.splitlines() if '"callhook started"' in x)
        assert started["file_limit"] == 1024
        assert started["max_connections"] == 1024 - 128
        for i in range(1100):
            s = connect(h, f"127.0.3.{i % 3 + 1}")
            held.append(s)
        time.sleep(0.3)
        for s in held[-204:]:  # the last ones are over the cap: answered at once
            s.settimeout(2)
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                refused += s.recv(64).startswith(b"HTTP/1.1 503")
        assert refused >= 150, refused
        assert h.alive()
        # Nobody closes the silent ones: the hub does, and phones get through again.
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if phone_ok(h, "127.0.4.1").status == 200:
                    break
            time.sleep(0.2)
        else:
            raise AssertionError("phones still refused after header_timeout")
        for s in held[:100]:  # accepted and silent: answered 408 and closed by the hub
            assert read_all(s, timeout=4).startswith(b"HTTP/1.1 408")
        assert shed(h)["max_open"] >= refused
        assert shed(h)["header_timeout"] >= 100
    finally:
        for s in held:
            s.close()
        h.stop()
