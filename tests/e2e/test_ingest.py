"""Phone ingest through a real hub: every request shape, every vendor's names, every answer."""

from __future__ import annotations

import pytest

from callhook.ingest.model import PHONE_EVENTS
from callhook.ingest.vendors import VENDOR_EVENT_NAMES
from tests.support.hub import Hub
from tests.support.phone import get, pairs, send_raw

TOKEN = "gs-7f3a9c"


def test_seed_literal_request_is_accepted_and_readable(shared_hub: Hub) -> None:
    # Grandstream's example, Incoming Call: 192.168.40.207/mac=$mac&local=$local, plus our token.
    before = shared_hub.events(limit=1000)
    since = before[-1]["seq"] if before else 0
    r = get(shared_hub.port, f"/token={TOKEN}&event=Incoming%20Call&mac=000B82112233&local=101")
    assert r.status == 200, r.body
    assert r.json()["status"] == "ok"
    events = shared_hub.events(since_seq=since)
    assert events, "the accepted event must be in the log"
    start = next(e for e in events if e["event_type"] == "call_start")
    assert start["topic"] == "extension_events"
    assert start["callee"] == "sip:101@acme.example.com"
    assert start["tenant_name"] == "acme"
    assert isinstance(start["time"], str) and start["time"].isdigit()
    assert isinstance(start["seq"], int) and start["event_id"]


@pytest.mark.parametrize(
    "target",
    [
        f"/ingest/{TOKEN}/incoming_call?mac=000B82112233&local=101&remote=0711222333",
        f"/ingest/{TOKEN}/incoming_call/mac=000B82112233&local=101&remote=0711222333",
        f"/token={TOKEN}&event=incoming_call&mac=000B82112233&local=101&remote=0711222333",
        f"/ingest/{TOKEN}/Incoming%20Call?mac=00:0b:82:11:22:33&local=sip:101@pbx&remote=0711222333",
    ],
)
def test_request_shapes(shared_hub: Hub, target: str) -> None:
    r = get(shared_hub.port, target)
    assert r.status == 200, r.body
    assert r.json()["event"] == "incoming_call"


def test_pairs_only_from_open_network_is_recorded_raw_with_a_hint(shared_hub: Hub) -> None:
    # The test tenant allows open ingest from 127.0.0.0/8; a URL copied from Grandstream's guide.
    r = get(shared_hub.port, "/mac=000B82112233&local=101")
    assert r.status == 202, r.body
    assert "url-has-no-event-name" in r.json()["hints"]
    raw = shared_hub.events(key="action_url", limit=1000)
    assert any(e.get("pairs", {}).get("mac") == "000B82112233" for e in raw), raw


def test_unknown_token_is_404(shared_hub: Hub) -> None:
    r = get(shared_hub.port, "/token=nope&event=incoming_call&local=101")
    assert r.status == 404
    assert r.json()["error"]["code"] == "unknown-token"


def test_unrecognised_event_is_202_and_stored(shared_hub: Hub) -> None:
    r = get(shared_hub.port, f"/ingest/{TOKEN}/Door%20Opened?mac=000B82112233&local=101")
    assert r.status == 202
    raw = shared_hub.events(key="action_url", limit=1000)
    assert any(e.get("event_name") == "Door Opened" for e in raw)


def test_url_over_8k_is_414(shared_hub: Hub) -> None:
    r = get(shared_hub.port, f"/ingest/{TOKEN}/incoming_call?local=101&x=" + "a" * 9000)
    assert r.status == 414


def test_url_of_exactly_8k_is_taken_and_one_byte_more_is_414(shared_hub: Hub) -> None:
    """414 for a URL over 8 KiB; the `?` is part of the URL."""
    head = f"/ingest/{TOKEN}/dnd_on?local=101&x="
    exact = head + "a" * (8192 - len(head))
    assert len(exact) == 8192 and get(shared_hub.port, exact).status == 200
    assert get(shared_hub.port, exact + "a").status == 414


@pytest.mark.parametrize("size", [65_536, 1_000_000])
def test_a_huge_url_is_a_json_414_too(shared_hub: Hub, size: int) -> None:
    r = get(shared_hub.port, f"/token={TOKEN}&event=incoming_call&local=101&x=" + "a" * size)
    assert r.status == 414 and r.json()["error"]["code"] == "uri-too-long"
    assert get(shared_hub.port, f"/ingest/{TOKEN}/dnd_on?local=101").status == 200


def test_what_phones_send_unencoded_is_taken(shared_hub: Hub) -> None:
    """Phones substitute `$variables` as they are: a raw space (`event=Incoming Call`, as the
    README's URL table shows) or raw UTF-8 in the request line is read as if encoded."""
    target = (
        f"/token={TOKEN}&event=Incoming Call&local=102&remote=0711555666"
        "&display_remote=Иван Петров&call_id=raw-1"
    )
    request = f"GET {target} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n"
    r = send_raw(shared_hub.port, request.encode("utf-8"))
    assert r.status == 200, r.body
    assert r.json()["event"] == "incoming_call"
    [start] = [
        e for e in shared_hub.events(key="call_start", limit=1000) if e["call_id"] == "raw-1"
    ]
    assert start["caller_display_name"] == "Иван Петров"


@pytest.mark.parametrize(
    "request_bytes",
    [b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", b"NOT HTTP AT ALL\r\n\r\n", b"\x00\xff\r\n\r\n"],
)
def test_an_unreadable_request_is_a_json_400(shared_hub: Hub, request_bytes: bytes) -> None:
    r = send_raw(shared_hub.port, request_bytes)
    assert r.status == 400 and r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] in ("bad-request", "bad-encoding")
    assert get(shared_hub.port, f"/ingest/{TOKEN}/dnd_on?local=101").status == 200


def test_a_plus_in_a_url_is_a_plus(shared_hub: Hub) -> None:
    """Values are percent-decoded only: a SIP Call-ID may hold a `+`."""
    r = get(shared_hub.port, f"/token={TOKEN}&event=Incoming+Call&local=103&call_id=5f3a+b2@pbx")
    assert r.status == 200 and r.json()["event"] == "incoming_call"
    starts = shared_hub.events(key="call_start", limit=1000)
    assert any(e["call_id"] == "5f3a+b2@pbx" for e in starts)


@pytest.mark.parametrize(
    ("target", "event"),
    [
        (f"/?token={TOKEN}&event=dnd_on&local=104", "dnd_on"),  # the root shape after `?`
        (f"/phone?token={TOKEN}&event=dnd_off&local=104", "dnd_off"),  # Yealink: /path?k=v
    ],
)
def test_pairs_in_the_query_of_any_path_are_a_phone(
    shared_hub: Hub, target: str, event: str
) -> None:
    r = get(shared_hub.port, target)
    assert r.status == 200 and r.json()["event"] == event, r.body
    dashboard = get(shared_hub.port, "/")
    assert dashboard.status == 200 and dashboard.headers["content-type"].startswith("text/html")


def test_raw_reports_are_never_dropped_and_two_phones_are_not_one(shared_hub: Hub) -> None:
    """An unrecognised event is stored raw, never dropped, even when repeated; and
    the same report from two phones (no MAC tells them apart) is two reports."""
    since = max((e["seq"] for e in shared_hub.events(limit=1000)), default=0)
    repeated = f"/token={TOKEN}&event=transfer_finished&local=105&call_id=tf-1"
    boot = f"/token={TOKEN}&event=Booting%20Completed&product=GXP2170&program_version=1.0.9"
    for source in ("127.0.0.2", "127.0.0.2", "127.0.0.9"):
        request = f"GET {repeated} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n"
        assert send_raw(shared_hub.port, request.encode(), source=source).status == 202
    for source in ("127.0.0.3", "127.0.0.4"):
        request = f"GET {boot} HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n"
        assert send_raw(shared_hub.port, request.encode(), source=source).status == 200
    events = shared_hub.events(since_seq=since, limit=1000)
    raw = [e for e in events if e.get("event_name") == "transfer_finished"]
    assert len(raw) == 3
    assert [e["source_ip"] for e in events if e["event_type"] == "boot_completed"] == [
        "127.0.0.3",
        "127.0.0.4",
    ]


def test_head_and_post_form(shared_hub: Hub) -> None:
    head = (
        f"HEAD /ingest/{TOKEN}/dnd_on?local=101 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).encode()
    r = send_raw(shared_hub.port, head)
    assert r.status == 200 and r.body == b""
    body = b"local=101&mac=000B82112233"
    post = (
        f"POST /ingest/{TOKEN}/dnd_off HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    r = send_raw(shared_hub.port, post)
    assert r.status == 200, r.body
    keys = [e["event_type"] for e in shared_hub.events(extension="101", limit=1000)]
    assert "dnd_on" in keys and "dnd_off" in keys


def test_utf8_display_names_survive(shared_hub: Hub) -> None:
    name = 'José "Pepe" 王小明'
    values = {"token": TOKEN, "event": "Incoming Call", "local": "102", "remote": "0711999888"}
    values["display_remote"] = name
    values["call_id"] = "utf8-call-1"
    r = get(shared_hub.port, "/" + pairs(values))
    assert r.status == 200, r.body
    starts = shared_hub.events(key="call_start", limit=1000)
    mine = [e for e in starts if e["call_id"] == "utf8-call-1"]
    assert mine and mine[0]["caller_display_name"] == name


@pytest.mark.parametrize("vendor", sorted(VENDOR_EVENT_NAMES))
def test_every_event_of_every_vendor_is_recognised(shared_hub: Hub, vendor: str) -> None:
    names = VENDOR_EVENT_NAMES[vendor]
    assert names, vendor
    for canonical, name in names.items():
        values = {"token": TOKEN, "event": name, "vendor": vendor, "local": "101"}
        values["mac"] = "000B82AABBCC"
        values["call_id"] = f"{vendor}-{canonical}"
        r = get(shared_hub.port, "/" + pairs(values))
        assert r.status == 200, (vendor, name, r.body)
        assert r.json()["event"] == canonical


def test_all_twenty_grandstream_events(shared_hub: Hub) -> None:
    assert len(PHONE_EVENTS) == 20
    for event in PHONE_EVENTS:
        r = get(shared_hub.port, f"/ingest/{TOKEN}/{event}?local=103&call_id=gs-{event}")
        assert r.status == 200, (event, r.body)


def test_a_form_post_to_the_root_works_like_the_get(shared_hub: Hub) -> None:
    body = f"token={TOKEN}&event=DND%20On&local=106&mac=000B82112299".encode()
    post = (
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    r = send_raw(shared_hub.port, post)
    assert r.status == 200, r.body
    assert r.json()["event"] == "dnd_on"
    got = get(shared_hub.port, f"/token={TOKEN}&event=DND%20On&local=107&mac=000B82112298")
    assert got.status == 200 and got.json()["events"] == r.json()["events"] == ["dnd_on"]
    keys = [e["event_type"] for e in shared_hub.events(extension="106", limit=100)]
    assert keys == ["dnd_on"]


@pytest.mark.parametrize("target", ["/%%%", "/a%zz", "/%"])
def test_a_url_that_cannot_be_decoded_is_a_json_400(shared_hub: Hub, target: str) -> None:
    r = get(shared_hub.port, target)
    assert r.status == 400, r
    assert r.headers["content-type"] == "application/json"
    assert "error" in r.json()


@pytest.mark.parametrize("target", ["/healthz?probe=1", "/readyz?x=1", "/openapi.json?v=2"])
def test_the_hubs_own_paths_with_pairs_are_not_phones(shared_hub: Hub, target: str) -> None:
    r = get(shared_hub.port, target)
    assert r.status == 200, r
    assert "status" not in r.json() or r.json()["status"] != "accepted"
