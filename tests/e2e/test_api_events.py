"""GET .../events and .../cdrs through a real hub: exact extension filters, bounded integers.

Every input has a limit and none makes the hub answer 500. An integer beyond
SQLite's 64 bits and an extension holding LIKE wildcards (`_`, `%`) or NUL used to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.hub import Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"
EVENTS = "/api/v1/tenants/acme/events"
CDRS = "/api/v1/tenants/acme/cdrs"
INT64_MAX = 2**63 - 1


def wait_for(what: str, check: Callable[[], Any], within: float = 15.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if got := check():
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def ehub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub where 101 and 102 each made one call (so each has events and a CDR)."""
    hub = Hub(tmp_path_factory.mktemp("events"), server_config="allow_private_targets = true")
    hub.start()
    try:
        for number, mac in (("101", "000B82000101"), ("102", "000B82000102")):
            phone = Phone(hub.port, TOKEN, number, mac=mac)
            call = {"remote": f"0711000{number}", "call_id": f"call-{number}"}
            assert phone.send("Incoming Call", **call).status == 200
            assert phone.send("Terminate Call", duration="3", **call).status == 200
        wait_for("a CDR of each call", lambda: len(cdrs(hub, "")) == 2)
        yield hub
    finally:
        hub.stop()


def cdrs(hub: Hub, query: str) -> list[dict[str, Any]]:
    status, body = hub.api("GET", f"{CDRS}?{query}")
    assert status == 200, body
    return list(body["cdrs"])


def assert_invalid(hub: Hub, method: str, path: str, field: str | None, body: Any = None) -> None:
    """`422` in the API's error shape (docs/api.md), and the hub still serves."""
    status, got = hub.api(method, path, body)
    assert status == 422, (path, got)
    assert isinstance(got, dict) and got["error"]["code"] == "invalid", got
    assert got["error"].get("field") == field, got
    assert hub.alive()
    assert hub.api("GET", "/healthz")[0] == 200


def test_extension_filter_matches_whole_numbers_exactly(ehub: Hub) -> None:
    seqs = {n: {e["seq"] for e in ehub.events(extension=n, limit=1000)} for n in ("101", "102")}
    assert seqs["101"] and seqs["102"] and not seqs["101"] & seqs["102"], seqs
    # `_` is allowed in extension numbers: it names an extension "10_", which made no calls.
    assert ehub.events(extension="10_", limit=1000) == []
    assert [c["call_id"] for c in cdrs(ehub, "extension=101")] == ["call-101"]
    assert cdrs(ehub, "extension=10_") == []


@pytest.mark.parametrize("value", ["%25", "%00", "10%25", "1,2", "%2C101%2C"])
@pytest.mark.parametrize(
    "path", [EVENTS, CDRS, "/api/v1/tenants/acme/call-events"], ids=["events", "cdrs", "rules"]
)
def test_extension_outside_the_number_rule_is_422(ehub: Hub, path: str, value: str) -> None:
    assert_invalid(ehub, "GET", f"{path}?extension={value}", "extension")


@pytest.mark.parametrize(
    "value", [2**63, 99999999999999999999, 10**300], ids=["2**63", "20-nines", "10**300"]
)
@pytest.mark.parametrize(
    ("path", "field"),
    [(EVENTS, "since_seq"), (CDRS, "cursor"), (CDRS, "from"), (CDRS, "to")],
    ids=["events-since_seq", "cdrs-cursor", "cdrs-from", "cdrs-to"],
)
def test_integer_beyond_64_bits_is_422(ehub: Hub, path: str, field: str, value: int) -> None:
    assert_invalid(ehub, "GET", f"{path}?{field}={value}", field)
    status, largest = ehub.api("GET", f"{path}?{field}={INT64_MAX}")  # the bound itself is fine
    assert status == 200, largest
    found = largest if isinstance(largest, list) else largest["cdrs"]
    assert len(found) == (2 if field == "to" else 0), found


def test_delivery_log_before_seq_beyond_64_bits_is_422(ehub: Hub) -> None:
    url = {"url": "http://127.0.0.1:9/"}
    status, webhook = ehub.api("POST", "/api/v1/tenants/acme/webhooks", url)
    assert status == 201, webhook
    path = f"/api/v1/tenants/acme/webhooks/{webhook['id']}/deliveries"
    assert_invalid(ehub, "GET", f"{path}?before_seq={2**63}", "before_seq")
    status, page = ehub.api("GET", f"{path}?before_seq={INT64_MAX}")
    assert status == 200, page


@pytest.mark.parametrize(
    "body",
    [
        {"event_type": "queue_status", "queue": "8001", "waiting_calls": 2**64},
        {"event_type": "trunk_connected", "trunk": "carrier1", "note": {"n": -(2**64)}},
    ],
    ids=["declared", "extra"],
)
def test_published_integer_beyond_64_bits_is_422(ehub: Hub, body: dict[str, Any]) -> None:
    # Used to pass validation, fail in the writer and come back 503 storage-unavailable.
    assert_invalid(ehub, "POST", EVENTS, None, body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_type": "queue_status", "queue": "80\x0001", "waiting_calls": 2}, "queue"),
        ({"event_type": "trunk_connected", "trunk": "c1", "note": {"a": ["x\x00"]}}, "note.a.0"),
        ({"event_type": "trunk_connected", "trunk": "c1", "note": {"k\x00": 1}}, "note"),
    ],
    ids=["declared", "nested", "key"],
)
def test_published_nul_character_is_422(ehub: Hub, body: dict[str, Any], field: str) -> None:
    # Valid JSON (\u0000), but PostgreSQL's text cannot hold it: it came back 503
    # storage-unavailable for a queue name, whatever the retry.
    assert_invalid(ehub, "POST", EVENTS, field, body)


@pytest.mark.parametrize("value", ["%C2%B2", "%D9%A3"])  # "²", Arabic-Indic "3": isdigit()
def test_cdr_time_of_non_ascii_digits_is_400(ehub: Hub, value: str) -> None:
    status, got = ehub.api("GET", f"{CDRS}?from={value}")
    assert status == 400, got
    assert got["error"] == {
        "code": "bad-request",
        "message": "from: expected Unix seconds or ISO 8601",
        "field": "from",
    }
    assert ehub.alive()
