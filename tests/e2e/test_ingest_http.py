"""HTTP/1.1 behaviour of phone ingest on a real hub's main port: keep-alive, pipelining, a
phone request and API requests on one connection, HTTP/1.0, a phone that hangs up early.

Phone GETs are answered from the HTTP protocol's callbacks (callhook/ingest/fastpath.py),
everything else by the ASGI app; on one connection the answers must still come in order.
"""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from callhook.ingest import fastpath
from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Response, parse_response, send_raw

TOKEN = "gs-7f3a9c"


def read_responses(
    sock: socket.socket, count: int, timeout: float = 10, heads: list[bool] | None = None
) -> list[Response]:
    """Read `count` responses with Content-Length bodies from a kept-alive connection
    (`heads[i]`: the i-th answers a HEAD, so it has no body whatever its Content-Length)."""
    sock.settimeout(timeout)
    buf = b""
    out: list[Response] = []
    while len(out) < count:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = parse_response(buf[: head_end + 4])
            length = int(head.headers.get("content-length", "0"))
            if heads and heads[len(out)]:
                length = 0
            end = head_end + 4 + length
            if len(buf) >= end:
                out.append(parse_response(buf[:end]))
                buf = buf[end:]
                continue
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return out


def phone_get(target: str, *, close: bool = False) -> bytes:
    conn = "Connection: close\r\n" if close else ""
    return f"GET {target} HTTP/1.1\r\nHost: hub\r\n{conn}\r\n".encode()


def test_the_fast_path_is_in_use() -> None:
    # The pinned uvicorn has the hook; if an upgrade removes it, phones fall back to ASGI
    # (same answers, slower): this test says so instead of a silent slowdown.
    assert fastpath.AVAILABLE


def test_keep_alive_connection_answers_each_request_in_order(shared_hub: Hub) -> None:
    with socket.create_connection(("127.0.0.1", shared_hub.port)) as s:
        for i in range(5):
            s.sendall(phone_get(f"/ingest/{TOKEN}/dnd_on?local=101&mac=000B82112233&n={i}"))
            (r,) = read_responses(s, 1)
            assert r.status == 200, r.body
            assert "connection" not in r.headers  # kept alive
            assert r.headers["content-type"] == "application/json"
            assert r.headers["date"]  # uvicorn's default headers, as on every other answer


def test_an_idle_kept_alive_connection_is_closed_and_a_busy_one_is_not(shared_hub: Hub) -> None:
    # uvicorn's keep-alive timeout (5 s) closes a connection idle that long after an answer;
    # one that keeps sending requests more often than that stays open however long it lasts.
    idle = socket.create_connection(("127.0.0.1", shared_hub.port))
    busy = socket.create_connection(("127.0.0.1", shared_hub.port))
    with idle, busy:
        for s in (idle, busy):
            s.sendall(phone_get(f"/ingest/{TOKEN}/dnd_on?local=101&mac=000B82112233"))
            (r,) = read_responses(s, 1)
            assert r.status == 200, r.body
        started = time.monotonic()
        while time.monotonic() - started < 7.5:  # 1.5 keep-alive timeouts
            time.sleep(1.5)
            busy.sendall(phone_get(f"/ingest/{TOKEN}/dnd_off?local=101&mac=000B82112233"))
            (r,) = read_responses(busy, 1)
            assert r.status == 200, r.body
        idle.settimeout(5)
        assert idle.recv(65536) == b""  # closed by the hub, nothing sent
        busy.sendall(phone_get(f"/ingest/{TOKEN}/dnd_on?local=101&mac=000B82112233"))
        (r,) = read_responses(busy, 1)
        assert r.status == 200, r.body


def test_pipelined_requests_mixing_phones_and_the_api_keep_their_order(shared_hub: Hub) -> None:
    auth = f"Authorization: Bearer {ADMIN_KEY}\r\n"
    requests = [
        phone_get(f"/ingest/{TOKEN}/incoming_call?local=101&remote=0711555&call_id=pipe-1"),
        b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n",
        phone_get("/token=nope&event=dnd_on&local=101"),  # answered at once: 404
        f"GET /api/v1/tenants/acme/events?limit=1 HTTP/1.1\r\nHost: hub\r\n{auth}\r\n".encode(),
        phone_get(f"/ingest/{TOKEN}/terminate_call?local=101&remote=0711555&call_id=pipe-1"),
    ]
    with socket.create_connection(("127.0.0.1", shared_hub.port)) as s:
        s.sendall(b"".join(requests))  # all at once: the server sees them pipelined
        responses = read_responses(s, len(requests))
    assert [r.status for r in responses] == [200, 200, 404, 200, 200]
    assert responses[0].json()["events"][:1] == ["call_start"]
    assert responses[1].json()["status"] == "ok"
    assert responses[2].json()["error"]["code"] == "unknown-token"
    assert isinstance(responses[3].json(), list)
    assert "call_ended" in responses[4].json()["events"]
    assert responses[4].json()["seq"] > responses[0].json()["seq"]


def test_connection_close_and_http_1_0_close_after_the_answer(shared_hub: Hub) -> None:
    for request in (
        phone_get(f"/ingest/{TOKEN}/dnd_off?local=101", close=True),
        f"GET /ingest/{TOKEN}/dnd_on?local=101 HTTP/1.0\r\nHost: hub\r\n\r\n".encode(),
    ):
        with socket.create_connection(("127.0.0.1", shared_hub.port), timeout=10) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(65536):  # the server closes: recv returns b""
                data += chunk
        r = parse_response(data)
        assert r.status == 200 and r.headers["connection"] == "close", data


def test_a_phone_that_hangs_up_before_the_answer_loses_nothing(shared_hub: Hub) -> None:
    call_id = f"gone-{time.time_ns()}"
    for event in ("incoming_call", "terminate_call"):
        with socket.create_connection(("127.0.0.1", shared_hub.port)) as s:
            s.sendall(phone_get(f"/ingest/{TOKEN}/{event}?local=102&remote=0711&call_id={call_id}"))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        # closed with RST before the commit, most likely: the event is stored all the same
    deadline = time.monotonic() + 10
    keys: list[str] = []
    while time.monotonic() < deadline:
        evs = shared_hub.events(extension="102", limit=1000)
        keys = [e["event_type"] for e in evs if e.get("call_id") == call_id]
        if "call_cdr" in keys:
            break
        time.sleep(0.1)
    assert "call_start" in keys and "call_cdr" in keys
    r = shared_hub.api("GET", "/healthz")
    assert r[0] == 200


def test_ingest_metrics_count_requests_and_latency(shared_hub: Hub) -> None:
    with socket.create_connection(("127.0.0.1", shared_hub.port)) as s:
        s.sendall(phone_get(f"/ingest/{TOKEN}/dnd_on?local=103"))
        assert read_responses(s, 1)[0].status == 200
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: hub\r\n\r\n")
        (metrics,) = read_responses(s, 1)
    families = {f.name: f.samples for f in text_string_to_metric_families(metrics.body.decode())}
    ingested = {
        (x.labels["tenant"], x.labels["event"]): x.value
        for x in families["callhook_events_ingested"]
        if x.name.endswith("_total")
    }
    assert ingested[("acme", "dnd_on")] >= 1
    count = [x.value for x in families["callhook_ingest_seconds"] if x.name.endswith("_count")]
    assert count and count[0] >= 1
    appended = {x.labels["topic"] for x in families["callhook_events_appended"]}
    assert "extension_events" in appended or "device_events" in appended


# Requests a phone, a misconfigured phone, an integrator and a browser may send on one
# connection, with the status each must get.
_MIXED: list[tuple[bytes, int]] = [
    (phone_get(f"/ingest/{TOKEN}/dnd_on?local=104"), 200),
    (phone_get(f"/token={TOKEN}&event=DND%20Off&local=104"), 200),
    (phone_get(f"/ingest/{TOKEN}/Door%20Opened?local=104"), 202),
    (phone_get("/token=nope&event=dnd_on&local=104"), 404),
    (phone_get(f"/ingest/{TOKEN}/dnd_on?local=104&x=" + "a" * 9000), 414),
    (phone_get("/ingest/"), 400),
    (f"HEAD /ingest/{TOKEN}/dnd_on?local=104 HTTP/1.1\r\nHost: hub\r\n\r\n".encode(), 200),
    (b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n", 200),
    (b"GET /api/v1/tenants HTTP/1.1\r\nHost: hub\r\n\r\n", 401),
    (
        f"POST /ingest/{TOKEN}/dnd_off HTTP/1.1\r\nHost: hub\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\n"
        "local=104".encode(),
        200,
    ),
    (
        f"GET /ingest/{TOKEN}/dnd_on?local=104 HTTP/1.1\r\nHost: hub\r\n"
        "Content-Length: 5\r\n\r\nhello".encode(),  # a GET with a body: the body is skipped
        200,
    ),
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.sampled_from(range(len(_MIXED))), min_size=1, max_size=12), st.booleans())
def test_any_mix_of_pipelined_requests_is_answered_in_order(
    shared_hub: Hub, picks: list[int], at_once: bool
) -> None:
    heads = [_MIXED[i][0].startswith(b"HEAD") for i in picks]
    with socket.create_connection(("127.0.0.1", shared_hub.port)) as s:
        if at_once:
            s.sendall(b"".join(_MIXED[i][0] for i in picks))
            got = read_responses(s, len(picks), heads=heads)
        else:
            got = []
            for i, head in zip(picks, heads, strict=True):
                s.sendall(_MIXED[i][0])
                got += read_responses(s, 1, heads=[head])
    assert [r.status for r in got] == [_MIXED[i][1] for i in picks]
    for i, r in zip(picks, got, strict=True):
        if _MIXED[i][0].startswith(b"HEAD"):
            assert r.body == b"" and int(r.headers["content-length"]) > 0


# Request shapes whose answers come from the tolerant part of the main port's protocol:
# they must be the same with and without the fast path.
_BIG = "a" * 20000
_SHAPES = [
    f"GET /token={TOKEN}&event=DND On&local=104&display_local=张伟 HTTP/1.1\r\n"
    "Host: hub\r\nConnection: close\r\n\r\n".encode(),
    f"GET /ingest/{TOKEN}/dnd_off?local=104&x={'y' * 9000} HTTP/1.1\r\n"
    "Host: hub\r\nConnection: close\r\n\r\n".encode(),
    f"GET /token={TOKEN}&event=DND%20On&local=104 HTTP/1.1\r\nBad Header\r\n\r\n".encode(),
    f"GET /token={TOKEN}&event=DND%20On&local=104 HTTP/1.1\r\nX-Big: {_BIG}\r\n\r\n".encode(),
    b"GET /a b c HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n",
]


def _answer(port: int, request: bytes) -> tuple[int, str, bytes]:
    r = send_raw(port, request)
    body = r.body if r.status != 200 else b"ok"  # a 200 carries its seq
    return r.status, r.headers.get("content-type", ""), body


def test_phones_are_served_alike_without_the_fast_path(tmp_path: Path, shared_hub: Hub) -> None:
    """The ASGI path phones fall back to (a uvicorn without the hook) answers the same."""
    hub = Hub(tmp_path)
    code = (
        "import asyncio, sys; from callhook.config import load; from callhook.server import serve;"
        "asyncio.run(serve(load(sys.argv[1]), fast_ingest=False))"
    )
    hub.start(command=[sys.executable, "-c", code, str(hub.config_path)])
    try:
        with socket.create_connection(("127.0.0.1", hub.port)) as s:
            requests = [_MIXED[i] for i in range(len(_MIXED))]
            heads = [r.startswith(b"HEAD") for r, _ in requests]
            s.sendall(b"".join(r for r, _ in requests))
            got = read_responses(s, len(requests), heads=heads)
        assert [r.status for r in got] == [status for _, status in requests]
        keys = [e["event_type"] for e in hub.events(extension="104", limit=100)]
        assert keys.count("dnd_on") >= 1 and "dnd_off" in keys
        fallback = [_answer(hub.port, shape) for shape in _SHAPES]
        fast = [_answer(shared_hub.port, shape) for shape in _SHAPES]
        assert fallback == fast
        assert [status for status, _, _ in fast] == [200, 414, 400, 431, 404]
        assert all(kind == "application/json" for _, kind, _ in fast)
        # said loudly: a warning at start and a metric
        assert "phone fast path off" in hub.log_path.read_text()
        assert "callhook_ingest_fast_path 0.0" in hub.api("GET", "/metrics")[1]
        assert "callhook_ingest_fast_path 1.0" in shared_hub.api("GET", "/metrics")[1]
    finally:
        hub.stop()


def test_a_refused_write_is_a_503_and_the_hub_goes_on(tmp_path: Path) -> None:
    """The database refuses one write (a trigger stands in for a full disk): the phone and
    the publisher get 503 storage-unavailable, nothing half-stored, the next write works."""
    hub = Hub(tmp_path).start()
    try:
        if hub.backend == "postgresql":
            hub.sql(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF convert_from(NEW.body, 'UTF8') LIKE '%%poison%%' THEN"
                " RAISE EXCEPTION 'disk says no'; END IF; RETURN NEW; END $$"
            )
            each_row = "FOR EACH ROW EXECUTE FUNCTION refuse()"
            hub.sql(f"CREATE TRIGGER refuse BEFORE INSERT ON events {each_row}")
        else:
            hub.sql(
                "CREATE TRIGGER refuse BEFORE INSERT ON events"
                " WHEN CAST(NEW.body AS TEXT) LIKE '%poison%'"
                " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
            )
        before = len(hub.events(limit=1000))
        with socket.create_connection(("127.0.0.1", hub.port)) as s:
            s.sendall(phone_get(f"/ingest/{TOKEN}/incoming_call?local=101&call_id=poison-1"))
            (refused,) = read_responses(s, 1)
            s.sendall(phone_get(f"/ingest/{TOKEN}/dnd_on?local=101"))
            (fine,) = read_responses(s, 1)
        assert refused.status == 503, refused.body
        assert refused.json()["error"]["code"] == "storage-unavailable"
        assert fine.status == 200
        status, body = hub.api(
            "POST",
            "/api/v1/tenants/acme/events",
            {"event_type": "trunk_connected", "trunk": "poison"},
        )
        assert status == 503 and body["error"]["code"] == "storage-unavailable"
        after = hub.events(limit=1000)
        assert [e["event_type"] for e in after[before:]] == ["dnd_on"]
        assert [e["seq"] for e in after] == list(range(1, len(after) + 1))
        assert "events not stored" in hub.logs()
    finally:
        hub.stop()


def test_hundreds_of_pipelined_refusals_behind_a_pending_request_all_get_answers(
    shared_hub: Hub,
) -> None:
    """Answers given at once must not call each other: 600 pipelined requests that are
    refused without a commit, queued behind one that waits for its commit."""
    requests = [phone_get(f"/ingest/{TOKEN}/dnd_on?local=104")]
    requests += [phone_get("/token=nope&event=dnd_on&local=104")] * 600
    with socket.create_connection(("127.0.0.1", shared_hub.port)) as s:
        s.sendall(b"".join(requests))
        got = read_responses(s, len(requests), timeout=20)
    assert [r.status for r in got] == [200] + [404] * 600
