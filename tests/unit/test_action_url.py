"""The Action URL parser: request shapes, refusals, event names and vendor dialects
(variable aliases and value rules: test_action_url_variables.py)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from callhook.ingest.action_url import MAX_URL_BYTES, IngestError, mend_hashes, parse_request
from callhook.ingest.model import ParsedRequest
from callhook.ingest.vendors import VENDOR_EVENT_NAMES
from tests.support.action_url import get


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
