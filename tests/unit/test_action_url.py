"""The Action URL parser: request shapes, event names, variable aliases and value rules."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from callhook.ingest.action_url import MAX_URL_BYTES, IngestError, mend_hashes, parse_request
from callhook.ingest.model import ParsedRequest
from callhook.ingest.vendors import VENDOR_EVENT_NAMES


def get(target: str | bytes, user_agent: str = "") -> ParsedRequest:
    """Parse a GET of a request target as it would appear on the request line."""
    raw = target.encode() if isinstance(target, str) else target
    path, _, query = raw.partition(b"?")
    return parse_request("GET", path, query, user_agent=user_agent)


def refused(target: str | bytes) -> IngestError:
    with pytest.raises(IngestError) as info:
        get(target)
    return info.value


# -- request shapes -----------------------------------------------------------------------------

SEED_VARIABLES = {"mac": "000B82112233", "local": "101", "remote": "0711222333"}


@pytest.mark.parametrize(
    "target",
    [
        "/ingest/tok/incoming_call?mac=000B82112233&local=101&remote=0711222333",
        "/ingest/tok/incoming_call/mac=000B82112233&local=101&remote=0711222333",
        "/ingest/tok/incoming_call/mac=000B82112233&local=101?remote=0711222333",
        "/ingest/tok/incoming_call/mac=000B82112233&local=101&remote=0711222333&",
        "/ingest/tok/?event=incoming_call&mac=000B82112233&local=101&remote=0711222333",
        "/ingest/tok/event=incoming_call&mac=000B82112233&local=101&remote=0711222333",
        "/token=tok&event=incoming_call&mac=000B82112233&local=101&remote=0711222333",
        "/token=tok&event=Incoming%20Call&mac=000B82112233&local=101&remote=0711222333",
        "/token=tok&event=Incoming+Call&mac=000B82112233&local=101&remote=0711222333",
        "/?token=tok&event=incoming_call&mac=000B82112233&local=101&remote=0711222333",
        "/callhook/token=tok&event=incoming_call&mac=000B82112233&local=101&remote=0711222333",
        "/callhook?token=tok&event=incoming-call&mac=000B82112233&local=101&remote=0711222333",
        "//token=tok&event=IncomingCall&mac=000B82112233&local=101&remote=0711222333/",
        "/token=tok&event=incoming_call?mac=000B82112233&local=101&remote=0711222333",
    ],
)
def test_shapes_with_token_and_event(target: str) -> None:
    parsed = get(target)
    assert parsed.token == "tok"
    assert parsed.event == "incoming_call"
    assert parsed.variables == SEED_VARIABLES
    assert parsed.vendor == "grandstream"
    assert "token" not in parsed.pairs and "event" not in parsed.pairs
    assert parsed.hints == ()


def test_event_name_is_kept_as_sent() -> None:
    parsed = get("/token=tok&event=Incoming+Call&mac=000B82112233")
    assert parsed.event_name == "Incoming Call"
    assert parsed.pairs == {"mac": "000B82112233"}


def test_pairs_only_seed_example() -> None:
    # Seed 000: "Incoming Call: 192.168.40.207/mac=$mac&local=$local", substituted.
    parsed = get("/mac=000B82112233&local=101")
    assert parsed == ParsedRequest(
        token=None,
        event_name=None,
        event=None,
        variables={"mac": "000B82112233", "local": "101"},
        pairs={"mac": "000B82112233", "local": "101"},
        hints=("url-has-no-event-name",),
    )


def test_seed_on_unhold_example() -> None:
    # Seed 001: "On Unhold: .../call-id=$call-id&program_version=$program_version".
    parsed = get("/token=t&event=On%20Unhold&call-id=abc%40pbx&program_version=1.0.3.24")
    assert parsed.event == "resume_call"
    assert parsed.variables == {"call_id": "abc@pbx", "program_version": "1.0.3.24"}
    assert parsed.pairs == {"call-id": "abc@pbx", "program_version": "1.0.3.24"}


def test_ingest_path_with_event_and_no_pairs() -> None:
    parsed = get("/ingest/tok/booting_completed")
    assert (parsed.token, parsed.event, parsed.variables, parsed.pairs) == (
        "tok",
        "booting_completed",
        {},
        {},
    )


def test_ingest_path_without_event() -> None:
    parsed = get("/ingest/tok")
    assert parsed.token == "tok"
    assert parsed.event_name is None
    assert parsed.hints == ("url-has-no-event-name",)


def test_path_wins_over_pairs_and_the_last_pair_wins() -> None:
    parsed = get("/ingest/tok/dnd_on?token=other&event=dnd_off")
    assert (parsed.token, parsed.event) == ("tok", "dnd_on")
    parsed = get("/token=a&event=dnd_on&token=b&event=dnd_off")
    assert (parsed.token, parsed.event) == ("b", "dnd_off")


def test_unknown_event_name_is_kept() -> None:
    parsed = get("/ingest/tok/Phone%20Exploded?local=101")
    assert parsed.event is None
    assert parsed.event_name == "Phone Exploded"
    assert parsed.variables == {"local": "101"}
    assert parsed.hints == ()


def test_extra_path_segments_are_ignored_with_a_hint() -> None:
    parsed = get("/ingest/tok/dnd_on/extra/local=101")
    assert parsed.event == "dnd_on"
    assert parsed.variables == {"local": "101"}
    assert parsed.hints == ("ignored-path-segments",)


def test_unencoded_slash_in_a_path_value() -> None:
    # Grandstream substitutes values into the path unencoded.
    parsed = get("/mac=000B82112233&display_remote=Sales/EMEA&local=101")
    assert parsed.variables == {
        "mac": "000B82112233",
        "display_remote": "Sales/EMEA",
        "local": "101",
    }


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"event=incoming_call&local=101", "application/x-www-form-urlencoded"),
        (b"event=incoming_call&local=101", "Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
    ],
)
def test_post_form_body(body: bytes, content_type: str) -> None:
    parsed = parse_request("POST", b"/ingest/tok", b"mac=000B82112233", body, content_type)
    assert parsed.event == "incoming_call"
    assert parsed.variables == {"mac": "000B82112233", "local": "101"}


def test_post_other_body_is_ignored() -> None:
    parsed = parse_request("POST", b"/ingest/tok/dnd_on", b"", b'{"local": 1}', "application/json")
    assert parsed.variables == {}
    assert parsed.hints == ("body-ignored",)
    # A GET's body is never read.
    parsed = parse_request("GET", b"/ingest/tok/dnd_on", b"", b"local=1", "text/plain")
    assert parsed.hints == ()


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["/", "", "/favicon.ico", "/ingest", "/ingest/", "/ingest//dnd_on", "/ingest/%20/x", "/?"],
)
def test_unrecognised_url(target: str) -> None:
    error = refused(target)
    assert (error.status, error.code) == (400, "unrecognised-url")
    assert error.message


def test_nul_character_is_refused() -> None:
    error = refused("/ingest/tok/dnd_on?local=1%002")
    assert (error.status, error.code) == (400, "bad-encoding")


def test_uri_too_long() -> None:
    path = b"/ingest/tok/dnd_on"
    ok = path + b"?x=" + b"1" * (MAX_URL_BYTES - len(path) - 3)
    assert len(ok) == MAX_URL_BYTES and get(ok).event == "dnd_on"  # the `?` counts
    error = refused(ok + b"1")
    assert (error.status, error.code) == (414, "uri-too-long")
    error = refused(b"/" + b"a=" * MAX_URL_BYTES)
    assert error.status == 414


def test_body_too_large() -> None:
    with pytest.raises(IngestError) as info:
        parse_request(
            "POST", b"/ingest/t/x", b"", b"a" * 70_000, "application/x-www-form-urlencoded"
        )
    assert (info.value.status, info.value.code) == (413, "body-too-large")


def test_error_is_an_exception_with_its_code_in_str() -> None:
    error = IngestError(400, "unrecognised-url", "nothing here")
    assert str(error) == "unrecognised-url: nothing here"


# -- event names ----------------------------------------------------------------------------


def _spellings(name: str) -> list[str]:
    words = name.split()
    return [
        name,
        name.lower().replace(" ", "_"),
        name.lower().replace(" ", "-"),
        "".join(word.capitalize() for word in words),
        name.upper(),
    ]


GRANDSTREAM_CASES = [
    (canonical, spelling)
    for canonical, name in VENDOR_EVENT_NAMES["grandstream"].items()
    for spelling in _spellings(name)
]


@pytest.mark.parametrize(("canonical", "spelling"), GRANDSTREAM_CASES)
def test_grandstream_event_spellings(canonical: str, spelling: str) -> None:
    assert get(f"/token=t&event={quote(spelling)}&local=101").event == canonical
    assert get(f"/token=t&event={spelling.replace(' ', '+')}").event == canonical
    assert get(f"/ingest/t/{quote(spelling)}").event == canonical
    assert get(f"/ingest/t/{quote(spelling)}").event_name == spelling


VENDOR_CASES = [
    (vendor, canonical, name)
    for vendor, names in VENDOR_EVENT_NAMES.items()
    for canonical, name in names.items()
]


@pytest.mark.parametrize(("vendor", "canonical", "name"), VENDOR_CASES)
def test_vendor_event_names(vendor: str, canonical: str, name: str) -> None:
    parsed = get(f"/ingest/t/{quote(name)}?vendor={vendor}")
    assert (parsed.event, parsed.vendor) == (canonical, vendor)


# -- variables ------------------------------------------------------------------------------


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


# -- vendors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "ua", "vendor", "hints"),
    [
        ("", "", "grandstream", ()),
        ("", "Yealink SIP-T46S 66.86.0.15", "yealink", ()),
        ("vendor=snom", "Yealink SIP-T46S", "snom", ()),
        ("vendor=Fanvil", "", "fanvil", ()),
        ("vendor=mitel", "", "aastra", ()),
        ("vendor=nokia", "Yealink SIP-T46S", "yealink", ("unknown-vendor",)),
    ],
)
def test_vendor_choice(query: str, ua: str, vendor: str, hints: tuple[str, ...]) -> None:
    parsed = get(f"/ingest/t/dnd_on?{query}", user_agent=ua)
    assert (parsed.vendor, parsed.hints) == (vendor, hints)


def test_yealink_uris_local_is_this_phone() -> None:
    parsed = get(
        "/ingest/t/outgoing_call?local=sip:101@pbx&remote=sip:0711@pbx",
        user_agent="Yealink SIP-T46S",
    )
    assert parsed.variables == {"local": "101", "remote": "0711"}


SNOM = "Mozilla/4.0 (compatible; snom760-SIP 10.1.46.16)"


@pytest.mark.parametrize(
    ("event", "extra", "outgoing", "swapped", "hints"),
    [
        # $local is always the callee, $remote the caller (docs/vendors.md).
        ("action_incoming_url", "", False, False, ()),
        ("action_missed_url", "", False, False, ()),
        ("action_outgoing_url", "", True, True, ()),
        ("action_connected_url", "&calldirection=outgoing", True, True, ()),
        ("action_connected_url", "&calldirection=incoming", False, False, ()),
        # No direction on a call under way: left as sent, hinted.
        ("action_disconnected_url", "", False, False, ("snom-direction-unknown",)),
        ("action_disconnected_url", "", True, False, ("snom-direction-unknown",)),
    ],
)
def test_snom_local_is_this_phone(
    event: str, extra: str, outgoing: bool, swapped: bool, hints: tuple[str, ...]
) -> None:
    # This phone is 101 ("Me"); the other party 0711 ("Them").
    callee, caller = (
        ("sip:0711@pbx", "sip:101@pbx") if outgoing else ("sip:101@pbx", "sip:0711@pbx")
    )
    names = ("Them", "Me") if outgoing else ("Me", "Them")
    parsed = get(
        f"/ingest/t/{event}?local={callee}&remote={caller}"
        f"&display_local={names[0]}&display_remote={names[1]}{extra}",
        user_agent=SNOM,
    )
    this_phone = not outgoing or swapped
    expected = ("101", "0711", "Me", "Them") if this_phone else ("0711", "101", "Them", "Me")
    variables = parsed.variables
    assert (
        variables["local"],
        variables["remote"],
        variables["display_local"],
        variables["display_remote"],
    ) == expected
    assert parsed.hints == hints
    assert parsed.pairs["local"] == callee  # pairs stay as sent


def test_snom_swap_with_one_side_missing() -> None:
    parsed = get("/ingest/t/outgoing_call?vendor=snom&remote=101")
    assert parsed.variables == {"local": "101"}


@pytest.mark.parametrize(
    ("target", "mended"),
    [
        (b"/remote=*72#&call_id=c1", b"/remote=*72%23&call_id=c1"),
        (b"/display_remote=Room#5&call_id=c1", b"/display_remote=Room%235&call_id=c1"),
        (b"/x=1#mac=000413000001&local=101", b"/x=1&mac=000413000001&local=101"),  # Snom
        (b"/remote=#", b"/remote=%23"),
        (b"/remote=a##b=c", b"/remote=a%23&b=c"),
        (b"/no-hash=here", b"/no-hash=here"),
    ],
)
def test_mend_hashes(target: bytes, mended: bytes) -> None:
    assert mend_hashes(target) == mended


def test_a_mended_hash_reads_back_as_the_phone_meant() -> None:
    parsed = get(mend_hashes(b"/token=t&event=Outgoing%20Call&remote=*72#&call_id=c1"))
    assert parsed.variables["remote"] == "*72#" and parsed.variables["call_id"] == "c1"


@pytest.mark.parametrize(
    "target",
    [
        "/token=t/event=Incoming%20Call/mac=000B82112233/local=101/call-id=c9",
        "/token=t&event=Incoming%20Call/mac=000B82112233&local=101/call-id=c9",
        "/ingest/t/incoming_call/mac=000B82112233/local=101/call-id=c9",
    ],
)
def test_pairs_separated_by_slashes(target: str) -> None:
    # Grandstream's ActionURL guide: "separate the dynamic variables with a '/'".
    parsed = get(target)
    assert parsed.token == "t" and parsed.event == "incoming_call"
    assert parsed.variables == {"mac": "000B82112233", "local": "101", "call_id": "c9"}


def test_a_slash_before_an_unknown_word_stays_in_the_value() -> None:
    parsed = get("/token=t/event=Incoming%20Call/display_remote=Sales/EMEA=x/local=101")
    assert parsed.variables["display_remote"] == "Sales/EMEA=x"
    assert parsed.variables["local"] == "101"
