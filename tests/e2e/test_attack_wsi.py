"""Attacks on WSI connections, on both carriers (the WSI listener and `/ws` on the main
port), against a real `callhook serve`: replies that are never read, a client that keeps
talking but never answers pings, and text frames that are not UTF-8.

Small limits in the test config ([wsi] max_queue_bytes, ping_interval) keep each attack
to a few seconds; memory is read from /proc/PID/status, close codes from the socket.
"""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hub import Hub
from tests.support.wsi import RawClient

# Extensions without a password (no Argon2 at start): they make a tenant's snapshot large.
MANY = "".join(f'\n[[tenant.extension]]\nnumber = "{n}"\n' for n in range(300, 500))
LIMITS = """
[wsi]
max_queue_bytes = 65536
ping_interval = 0.5
"""
TENANT_AUTH = json.dumps({"command": "auth", "name": "acme", "password": "tenant-secret"})
SNAPSHOT = json.dumps(
    {"command": "subscribe", "topics": [{"topic": "extension_events"}], "snapshot": True}
)
CLOSE, PING, PONG, TEXT = 0x8, 0x9, 0xA, 0x1


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    h = Hub(tmp_path_factory.mktemp("hub"), acme_config=MANY, extra_config=LIMITS).start()
    try:
        yield h
    finally:
        h.stop()


CARRIERS = ["listener", "main-port-ws"]


def open_client(h: Hub, carrier: str, rcvbuf: int = 0) -> RawClient:
    if carrier == "listener":
        return RawClient(h.wsi_port, "/", rcvbuf=rcvbuf)
    return RawClient(h.port, "/ws", rcvbuf=rcvbuf)


def rss_kib(h: Hub) -> int:
    assert h.proc is not None
    for line in Path(f"/proc/{h.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def counter(h: Hub, name: str) -> float:
    status, text = h.api("GET", "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        if family.name == name:
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    return 0.0


def until_close(c: RawClient, within: float = 10) -> tuple[int, bytes, list[bytes]]:
    """Read frames (answering nothing) until the close frame: (code, reason, texts before)."""
    deadline = time.monotonic() + within
    texts: list[bytes] = []
    while time.monotonic() < deadline:
        opcode, payload = c.recv_frame()
        if opcode == CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            return code, payload[2:], texts
        if opcode == TEXT:
            texts.append(payload)
    raise AssertionError("no close frame")


# The hub's deadlines for a client that has not logged in yet: two ping intervals (0.5 s
# here) to authenticate, and pings this client does not answer while it waits.
MISSED_DEADLINE = (b"authentication timeout", b"ping timeout")


def login(c: RawClient) -> bool:
    """Log in as the tenant; False if the hub closed first (a deadline above, which a
    loaded machine can miss)."""
    c.send_text(TENANT_AUTH)
    opcode, payload = c.recv_frame()
    while opcode == PING:  # the hub's keep-alive may come first
        opcode, payload = c.recv_frame()
    if opcode == CLOSE and payload[2:] in MISSED_DEADLINE:
        return False
    assert opcode == TEXT, (opcode, payload)
    assert json.loads(payload) == {"status": 0}
    return True


def logged_in(h: Hub, carrier: str, rcvbuf: int = 0) -> RawClient:
    """A client of `carrier`, logged in (again on a new connection if the deadline passed)."""
    for _ in range(5):
        c = open_client(h, carrier, rcvbuf)
        try:
            if login(c):
                return c
        except BaseException:
            c.close()  # not left for the garbage collector to warn about in a later test
            raise
        c.close()
    raise AssertionError("five logins in a row missed the authentication deadline")


# 17.3: what a client does not read counts against max_queue_bytes ------------------------
@pytest.mark.parametrize("carrier", CARRIERS)
def test_snapshots_never_read_close_the_client_with_1013(hub: Hub, carrier: str) -> None:
    with logged_in(hub, carrier) as warm:  # the first snapshots' one-off allocations
        for _ in range(3):
            warm.send_text(SNAPSHOT)
        texts = 0
        while texts < 6:  # each subscribe: its reply, then the snapshot
            texts += warm.recv_frame()[0] == TEXT
    before_mem, before_slow = rss_kib(hub), counter(hub, "callhook_wsi_slow_consumers")
    c = logged_in(hub, carrier, rcvbuf=4096)
    try:
        c.sock.settimeout(0.5)
        for i in range(400):  # ~30 KB each: 12 MB the hub would otherwise hold
            try:
                c.send_text(SNAPSHOT)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break  # the hub stopped reading or closed: enough
            time.sleep(0.015)
            # Stop once the hub gave up on us, to read its close frame before it aborts.
            if i % 20 == 19 and counter(hub, "callhook_wsi_slow_consumers") > before_slow:
                break
        grown = rss_kib(hub) - before_mem
        c.sock.settimeout(10)
        code, reason, _ = until_close(c)
    finally:
        c.close()
    assert code == 1013, (code, reason)
    assert reason.startswith(b"slow consumer"), reason
    assert grown < 8 * 1024, f"hub grew {grown} KiB"
    assert counter(hub, "callhook_wsi_slow_consumers") == before_slow + 1


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_command_flood_that_never_reads_is_bounded(hub: Hub, carrier: str) -> None:
    before_mem, before_slow = rss_kib(hub), counter(hub, "callhook_wsi_slow_consumers")
    c = logged_in(hub, carrier, rcvbuf=4096)
    ping = json.dumps({"command": "ping", "pad": "x" * 30})
    try:
        c.sock.settimeout(0.5)
        for i in range(20000):  # pongs the client never reads
            try:
                c.send_text(ping)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                break
            if i % 1000 == 999 and counter(hub, "callhook_wsi_slow_consumers") > before_slow:
                break
        grown = rss_kib(hub) - before_mem
        c.sock.settimeout(10)
        code, _, _ = until_close(c)
    finally:
        c.close()
    # Over budget (1013), or silent to the hub's pings while it talks (1008): either way
    # the flood ends within a second or two, and what it cost is bounded.
    assert code in (1008, 1013), code
    assert grown < 8 * 1024, f"hub grew {grown} KiB"


@pytest.mark.parametrize("carrier", CARRIERS)
def test_own_traffic_does_not_keep_a_client_that_ignores_pings(hub: Hub, carrier: str) -> None:
    c = logged_in(hub, carrier)
    ping = json.dumps({"command": "ping"})
    try:
        started = time.monotonic()
        closed_with = None
        while time.monotonic() - started < 5 and closed_with is None:
            try:
                c.send_text(ping)
            except OSError:
                break
            c.sock.settimeout(0.05)
            try:
                while True:
                    opcode, payload = c.recv_frame()  # pings are read, never answered
                    if opcode == CLOSE:
                        closed_with = struct.unpack("!H", payload[:2])[0]
                        break
            except TimeoutError:
                pass
        took = time.monotonic() - started
    finally:
        c.close()
    assert closed_with in (1008, 1013), closed_with
    assert took < 3, took  # two ping intervals of 0.5 s, and the shared timer's phase


@pytest.mark.parametrize("carrier", CARRIERS)
def test_a_client_that_answers_pings_stays(hub: Hub, carrier: str) -> None:
    c = logged_in(hub, carrier)
    try:
        c.sock.settimeout(0.2)
        started = time.monotonic()
        pings = 0
        while time.monotonic() - started < 2.5:
            try:
                opcode, payload = c.recv_frame()
            except TimeoutError:
                continue
            assert opcode != CLOSE, payload
            if opcode == PING:
                pings += 1
                c.send_frame(PONG, payload)
        assert pings >= 1
        c.send_text(json.dumps({"command": "ping"}))
        c.sock.settimeout(5)
        assert json.loads(c.recv_frame()[1]) == {"status": 0, "pong": True}
    finally:
        c.close()


# 17.4: a text frame that is not UTF-8 ----------------------------------------------------
@pytest.mark.parametrize("carrier", CARRIERS)
def test_invalid_utf8_closes_with_1007_and_no_traceback(hub: Hub, carrier: str) -> None:
    before = counter(hub, "callhook_wsi_invalid_utf8")
    c = open_client(hub, carrier)
    try:
        c.send_frame(TEXT, b'{"command": "auth", "name": "\xff\xfe"}')  # before auth
        code, reason, _ = until_close(c, within=5)
    finally:
        c.close()
    assert code == 1007, (code, reason)
    assert counter(hub, "callhook_wsi_invalid_utf8") == before + 1
    logs = hub.log_path.read_text()
    assert "Traceback" not in logs
    assert '"level": "error"' not in logs and '"level":"error"' not in logs
