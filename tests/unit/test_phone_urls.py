"""Phone URLs: the right shape per vendor, and every URL parses back to its own event."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest

from callhook.ingest.action_url import parse_request
from callhook.ingest.vendors import VENDOR_EVENT_NAMES
from callhook.phone_urls import (
    URL_VENDORS,
    PhoneUrlError,
    phone_url,
    phone_urls,
    provisioning,
    split_host,
)

TOKEN = "gs-7f3a9c"
# What a phone puts in place of each `$variable` (both spellings of the call id).
VALUES = {
    "mac": "00:0b:82:11:22:33",
    "local": "101",
    "remote": "0711222333",
    "display_remote": "Jürgen O'Neil",
    "call_id": "abc-1",
    "call-id": "abc-1",
    "duration": "42",
    "phone_ip": "192.0.2.5",
    "ip": "192.0.2.5",
    "product": "GXP2170",
    "model": "T46U",
    "program_version": "1.0.11",
    "firmware": "66.86",
    "hardware_version": "V1.0",
    "active_user": "101",
    "active_host": "pbx.example.com",
    "calldirection": "incoming",
    "language": "English",
    "display_local": "Alice",
}


def substitute(url: str) -> str:
    """Do what the phone does: replace each `$name` with its value (percent-encoded)."""
    from urllib.parse import quote

    return re.sub(r"\$([A-Za-z_-]+)", lambda m: quote(VALUES[m.group(1)], safe=""), url)


def as_request(vendor: str, url: str) -> tuple[bytes, bytes]:
    """The request line's path and query the phone sends for `url`."""
    if vendor == "grandstream":
        assert "://" not in url and "?" not in url  # Grandstream's format
        path = url[url.index("/") :]
        return path.encode(), b""
    parts = urlsplit(url)
    return parts.path.encode(), parts.query.encode()


@pytest.mark.parametrize("vendor", URL_VENDORS)
def test_every_url_parses_back_to_its_event(vendor: str) -> None:
    urls = phone_urls(vendor, "192.0.2.10:8080", TOKEN)
    assert [u.event for u in urls] == list(VENDOR_EVENT_NAMES[vendor])
    for u in urls:
        path, query = as_request(vendor, substitute(u.url))
        parsed = parse_request("GET", path, query)
        assert parsed.token == TOKEN, u.url
        assert parsed.event == u.event, u.url
        assert parsed.vendor == vendor, u.url
        assert parsed.variables["mac"] == "000B82112233", u.url
        if "call_id" in u.url:
            assert parsed.variables["call_id"] == "abc-1", u.url
        # Snom's `$local` is always the callee and it has no direction variable: on events
        # of a call under way the parser leaves the roles to the correlator, with a hint.
        allowed = {"snom-direction-unknown"} if vendor == "snom" else set()
        assert set(parsed.hints) <= allowed, (u.url, parsed.hints)


def test_grandstream_is_the_seed_format() -> None:
    u = phone_url("grandstream", "incoming_call", "http://192.0.2.10:8080/", TOKEN)
    assert u.url == (
        "192.0.2.10:8080/token=gs-7f3a9c&event=Incoming%20Call&mac=$mac&local=$local"
        "&remote=$remote&display_remote=$display_remote&call_id=$call_id"
        "&calldirection=$calldirection"
    )
    assert u.setting == "Incoming Call"


@pytest.mark.parametrize(
    ("vendor", "event", "expected"),
    [
        (
            "yealink",
            "establish_call",
            "http://hub:8080/ingest/gs-7f3a9c/call_established?mac=$mac&local=$local"
            "&remote=$remote&display_remote=$display_remote&call_id=$call_id&vendor=yealink",
        ),
        (
            "snom",
            "terminate_call",
            "http://hub:8080/ingest/gs-7f3a9c/action_disconnected_url?mac=$mac&local=$local"
            "&remote=$remote&display_remote=$display_remote&call_id=$call-id"
            "&duration=$duration&vendor=snom",
        ),
        (
            "fanvil",
            "booting_completed",
            "http://hub:8080/ingest/gs-7f3a9c/Setup%20Completed?mac=$mac&ip=$ip&model=$model"
            "&firmware=$firmware&vendor=fanvil",
        ),
    ],
)
def test_vendor_urls_use_the_vendor_spelling(vendor: str, event: str, expected: str) -> None:
    assert phone_url(vendor, event, "hub:8080", TOKEN).url == expected


def test_https_host_and_path_prefix_are_kept() -> None:
    u = phone_url("yealink", "incoming_call", "https://hub.example.com/callhook/", TOKEN)
    assert u.url.startswith("https://hub.example.com/callhook/ingest/gs-7f3a9c/incoming_call?")


def test_vendors_without_an_event_have_no_url() -> None:
    with pytest.raises(PhoneUrlError, match="no 'syslog_on' event"):
        phone_url("yealink", "syslog_on", "hub", TOKEN)


@pytest.mark.parametrize("host", ["", "bad host", "ftp://hub", "hub?x=1", "hub#x", "a" * 300])
def test_bad_hosts_are_refused(host: str) -> None:
    with pytest.raises(PhoneUrlError, match="host"):
        split_host(host)


def test_bad_vendor_is_refused() -> None:
    with pytest.raises(PhoneUrlError, match="vendor 'cisco'"):
        phone_urls("cisco", "hub", TOKEN)


def test_yealink_limit_is_flagged() -> None:
    urls = phone_urls("yealink", "h" * 240 + ".example.com", "t" * 128)
    assert any(u.too_long for u in urls)
    assert all(len(u.url) > 511 for u in urls if u.too_long)


def test_provisioning_snippets() -> None:
    yealink = provisioning("yealink", phone_urls("yealink", "hub:8080", TOKEN))
    assert "action_url.incoming_call = http://hub:8080/ingest/gs-7f3a9c/incoming_call?" in yealink
    snom = provisioning("snom", phone_urls("snom", "hub:8080", TOKEN))
    assert snom.startswith('<?xml version="1.0" encoding="utf-8"?>\n<phone-settings>\n')
    assert '<action_incoming_url perm="">http://hub:8080/ingest/' in snom
    assert "&amp;local=$local" in snom and "&local" not in snom
    grandstream = provisioning("grandstream", phone_urls("grandstream", "hub:8080", TOKEN))
    assert "Incoming Call = hub:8080/token=gs-7f3a9c&event=Incoming%20Call" in grandstream
    assert len(grandstream.splitlines()) == 21  # a comment and the 20 events


@pytest.mark.parametrize(
    ("model", "call_id"), [("", "$call_id"), ("GXV3370", "$call_id"), ("gxv3240", "$call-id")]
)
def test_grandstream_models_use_their_guide_s_names(model: str, call_id: str) -> None:
    for u in phone_urls("grandstream", "192.0.2.10:8080", TOKEN, model):
        if "call_id=" in u.url:
            assert f"call_id={call_id}&" in u.url + "&", u.url
            path, query = as_request("grandstream", substitute(u.url))
            assert parse_request("GET", path, query).variables["call_id"] == "abc-1"


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(PhoneUrlError, match="GXV3240"):
        phone_urls("grandstream", "192.0.2.10:8080", TOKEN, "GXP9999")
    with pytest.raises(PhoneUrlError, match="none"):
        phone_urls("yealink", "192.0.2.10:8080", TOKEN, "T46U")


def test_every_variable_a_url_asks_for_is_kept() -> None:
    """The hub keeps every variable on the event (`phone`): nothing asked for is dropped."""
    from callhook.ingest.vendors import VARIABLE_ALIASES

    asked = {
        m.group(1)
        for v in URL_VENDORS
        for u in phone_urls(v, "192.0.2.10:8080", TOKEN)
        for m in re.finditer(r"\$([A-Za-z_-]+)", u.url)
    }
    known = {a for c, aliases in VARIABLE_ALIASES.items() for a in (c, *aliases)}
    assert asked <= known, asked - known
