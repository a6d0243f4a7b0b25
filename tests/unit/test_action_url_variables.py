"""The Action URL parser's variables: aliases, placeholders left unsubstituted, and the
rules for each value (names, MAC addresses, durations, numbers, directions)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from callhook.ingest.action_url import parse_request
from tests.support.action_url import get


@pytest.mark.parametrize(
    ("key", "value", "canonical", "expected"),
    [
        ("ip", "192.168.1.20", "phone_ip", "192.168.1.20"),
        ("LOCALIP", "10.0.0.5", "phone_ip", "10.0.0.5"),
        ("model", "GXV3370", "product", "GXV3370"),
        ("firmware", "1.0.1.28", "program_version", "1.0.1.28"),
        ("hardware_version", "V1.2A", "hardware_version", "V1.2A"),
        ("language", "en", "language", "en"),
        ("call_id", "a1b2@10.0.0.5", "call_id", "a1b2@10.0.0.5"),
        ("call-id", "x", "call_id", "x"),
        ("callid", "x", "call_id", "x"),
        ("callId", "x", "call_id", "x"),
        ("CallID", "x", "call_id", "x"),
        ("localNumber", "101", "local", "101"),
        ("localName", "Front%20Desk", "display_local", "Front Desk"),
        ("remoteNumber", "0711", "remote", "0711"),
        ("REMOTENUMBER", "0711", "remote", "0711"),
        ("remoteName", "Bob", "display_remote", "Bob"),
        ("DISPLAYNAME", "Bob", "display_remote", "Bob"),
        ("INCOMINGNAME", "Bob", "display_remote", "Bob"),
        ("account", "101", "active_user", "101"),
        ("SIPUSERNAME", "sip:101@pbx", "active_user", "101"),
        ("sipServer", "pbx.example.com", "active_host", "pbx.example.com"),
        ("active_host", "10.0.0.1", "active_host", "10.0.0.1"),
        ("CALLDURATION", "42", "duration", "42"),
        ("callDirection", "incoming", "calldirection", "incoming"),
        ("CALLDIRECTION", "Outgoing", "calldirection", "outgoing"),
        ("callType", "in", "calldirection", "incoming"),
        ("Call_Type", "out", "calldirection", "outgoing"),
    ],
)
def test_variable_aliases(key: str, value: str, canonical: str, expected: str) -> None:
    parsed = get(f"/ingest/t/dnd_on?{key}={value}")
    assert parsed.variables == {canonical: expected}
    assert key in parsed.pairs


@pytest.mark.parametrize(
    "target",
    [
        "/mac=$mac&local=$local&remote=$remote&call-id=$call-id&token=t&event=dnd_on",
        "/mac=%24mac&local=%24local&token=t&event=dnd_on",
        "/ingest/t/dnd_on?REMOTENUMBER=$$REMOTENUMBER$$&DISPLAYNAME=$$DISPLAYNAME$$",
        "/ingest/t/dnd_on?remoteNumber={remoteNumber}&call-id={call-id}",
        "/ingest/t/dnd_on?local=&remote=%20%20&duration=",
    ],
)
def test_unsubstituted_and_empty_values_are_absent(target: str) -> None:
    parsed = get(target)
    assert parsed.variables == {}
    assert parsed.pairs  # kept raw
    assert parsed.hints == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("$5 off", "$5 off"),
        ("$", "$"),
        ("{not a placeholder}", "{not a placeholder}"),
        ("A$local", "A$local"),
    ],
)
def test_dollar_values_that_are_not_placeholders(value: str, expected: str) -> None:
    parsed = get(f"/ingest/t/x?display_remote={quote(value)}")
    assert parsed.variables == {"display_remote": expected}


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("%E7%8E%8B%E5%B0%8F%E6%98%8E", "王小明"),
        ("Jos%C3%A9%20%22Pepe%22", 'José "Pepe"'),
        ("%D0%98%D0%B2%D0%B0%D0%BD%20%D0%9F%D0%B5%D1%82%D1%80%D0%BE%D0%B2", "Иван Петров"),
        ("O%27Brien%2C%20Pat%20%26%20Co", "O'Brien, Pat & Co"),
        ("%20Bob%20", "Bob"),
        # Percent-decoding only: a `+` in a URL is a plus sign.
        ("+49%20711%20555", "+49 711 555"),
        ("A+B", "A+B"),
        ("bad%FFbyte", "bad\ufffdbyte"),
        ("100%", "100%"),
        ("%zz", "%zz"),
    ],
)
def test_display_names_are_utf8_percent_decoded(encoded: str, decoded: str) -> None:
    for target in (
        f"/ingest/t/incoming_call?display_remote={encoded}",
        f"/ingest/t/incoming_call/display_remote={encoded}",
        f"/token=t&event=incoming_call&display_remote={encoded}",
    ):
        assert get(target).variables == {"display_remote": decoded}


def test_raw_non_utf8_bytes_are_replaced() -> None:
    parsed = get(b"/ingest/t/incoming_call?display_remote=\xe9t\xe9")
    assert parsed.variables == {"display_remote": "\ufffdt\ufffd"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("000B82112233", "000B82112233"),
        ("000b82112233", "000B82112233"),
        ("00:0b:82:11:22:33", "000B82112233"),
        ("00-0B-82-11-22-33", "000B82112233"),
        ("000b.8211.2233", "000B82112233"),
        ("%2000:0B:82:11:22:33%20", "000B82112233"),
    ],
)
def test_mac_is_normalised(value: str, expected: str) -> None:
    assert get(f"/ingest/t/x?mac={value}").variables == {"mac": expected}


@pytest.mark.parametrize(
    "value", ["000B8211223", "000B821122334", "000B8211223G", "zz", "\uff10\uff10\uff10B82112233"]
)
def test_bad_mac_is_hinted(value: str) -> None:
    parsed = get(f"/ingest/t/x?mac={quote(value)}&local=1")
    assert parsed.variables == {"local": "1"}
    assert parsed.pairs["mac"] == value
    assert parsed.hints == ("bad-mac",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "0"),
        ("42", "42"),
        ("0042", "42"),
        ("1:05", "65"),
        ("1:00:05", "3605"),
        ("9" * 5000, "9" * 5000),
    ],
)
def test_duration(value: str, expected: str) -> None:
    assert get(f"/ingest/t/x?duration={value}").variables == {"duration": expected}


@pytest.mark.parametrize("value", ["-1", "1.5", "12s", "abc", "%D9%A3", "1:2:3:4"])
def test_bad_duration_is_hinted(value: str) -> None:
    parsed = get(f"/ingest/t/x?duration={value}")
    assert parsed.variables == {}
    assert parsed.hints == ("bad-duration",)


def test_plus_is_a_plus_in_urls_and_a_space_only_in_names_and_form_bodies() -> None:
    """A SIP Call-ID may hold a `+`; reading it as a space changed the stored call id."""
    for target in (
        "/token=t&event=Incoming+Call&call_id=5f3a+b2/x@10.0.0.5&display_remote=+4971",
        "/ingest/t/Incoming+Call?call_id=5f3a+b2/x@10.0.0.5&display_remote=+4971",
    ):
        parsed = get(target)
        assert parsed.event == "incoming_call"
        assert parsed.variables == {"call_id": "5f3a+b2/x@10.0.0.5", "display_remote": "+4971"}
    body = b"event=Incoming+Call&display_remote=Bob+Smith&remote=+4971555&call_id=a%2Bb"
    form = parse_request("POST", b"/ingest/t", b"", body, "application/x-www-form-urlencoded")
    assert form.event == "incoming_call"
    assert form.variables == {"display_remote": "Bob Smith", "remote": "+4971555", "call_id": "a+b"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Called+Party", "incoming"), ("called%20party", "incoming"), ("Calling_Party", "outgoing")],
)
def test_calldirection_words_may_use_plus_for_a_space(value: str, expected: str) -> None:
    assert get(f"/ingest/t/x?calldirection={value}").variables == {"calldirection": expected}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("incoming", "incoming"),
        ("IN", "incoming"),
        ("inbound", "incoming"),
        ("called", "incoming"),
        ("Called+Party", "incoming"),
        ("callee", "incoming"),
        ("outgoing", "outgoing"),
        ("out", "outgoing"),
        ("Outbound", "outgoing"),
        ("calling", "outgoing"),
        ("caller", "outgoing"),
        ("dialed", "outgoing"),
        ("1", "1"),
        ("Sideways", "sideways"),
    ],
)
def test_calldirection(value: str, expected: str) -> None:  # a word: `+` may stand for a space
    assert get(f"/ingest/t/x?calldirection={value}").variables == {"calldirection": expected}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("101", "101"),
        ("+4971122233", "+4971122233"),
        ("%2B4971122233", "+4971122233"),
        ("sip:101@pbx.example.com", "101"),
        ("SIP:101@pbx.example.com:5060", "101"),
        ("sips:101@pbx.example.com", "101"),
        ("sip:+4971122233@pbx;user=phone", "+4971122233"),
        ("tel:+4971122233", "+4971122233"),
        ("101@pbx", "101"),
        ("101;user=phone", "101"),
        ("%3Csip:101@pbx%3E", "101"),
        ("%22Bob%20Smith%22%20%3Csip:101@pbx%3E;tag=1", "101"),
        ("Bob <sip:101@pbx", "101"),
        ("*72%23", "*72#"),
        ("*72#", "*72#"),
        ("anonymous", "anonymous"),
    ],
)
@pytest.mark.parametrize("key", ["local", "remote", "active_user"])
def test_number_fields_lose_uri_parts(key: str, value: str, expected: str) -> None:
    for target in (f"/ingest/t/x?{key}={value}", f"/ingest/t/x/{key}={value}"):
        assert get(target).variables == {key: expected}


@pytest.mark.parametrize("value", ["sip:@pbx", "%3C%3E", "@pbx"])
def test_number_field_without_a_user_is_absent(value: str) -> None:
    assert get(f"/ingest/t/x?remote={value}").variables == {}


def test_active_url_fills_active_user_and_host() -> None:
    parsed = get("/ingest/t/x?active_url=sip:101@pbx.example.com;transport=tls")
    assert parsed.variables == {"active_user": "101", "active_host": "pbx.example.com"}
    parsed = get("/ingest/t/x?active_url=sip:101@pbx&active_user=102&active_host=other")
    assert parsed.variables == {"active_user": "102", "active_host": "other"}
    assert get("/ingest/t/x?active_url=$active_url").variables == {}


def test_unknown_variables_go_only_to_pairs() -> None:
    parsed = get("/ingest/t/x?csta_id=7&local=101&Foo+Bar=baz%20qux")
    assert parsed.variables == {"local": "101"}
    assert parsed.pairs == {"csta_id": "7", "local": "101", "Foo Bar": "baz qux"}


@pytest.mark.parametrize(
    ("query", "pairs"),
    [
        ("&&foo&", {"foo": ""}),
        ("=x&=&&", {}),
        ("a=1=2", {"a": "1=2"}),
        ("local=1&local=2", {"local": "2"}),
        ("x=1#local=2&y", {"x": "1", "local": "2", "y": ""}),
    ],
)
def test_odd_pairs(query: str, pairs: dict[str, str]) -> None:
    assert get(f"/ingest/t/x?{query}").pairs == pairs


def test_last_alias_wins() -> None:
    assert get("/ingest/t/x?callid=1&call_id=2&callid=3").variables == {"call_id": "3"}
    assert get("/ingest/t/x?local=101&local=$local").variables == {}
