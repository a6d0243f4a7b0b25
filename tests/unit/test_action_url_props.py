"""Properties of the Action URL parser: it never fails but with IngestError, and it round-trips."""

from __future__ import annotations

import string
from urllib.parse import quote, unquote_to_bytes

from hypothesis import given, settings
from hypothesis import strategies as st

from callhook.ingest.action_url import IngestError, _decode, parse_request
from callhook.ingest.model import PHONE_EVENTS, VARIABLES, ParsedRequest
from callhook.ingest.vendors import VARIABLE_ALIASES, VENDOR_EVENT_NAMES, fold

FEW = settings(max_examples=200, deadline=None)

# Characters that give the parser's structure something to chew on.
URL_ALPHABET = "/=&?#%+$ {}<>:;@.-_abcdefABCDEF0123456789é王\x00\xff"
FORM = "application/x-www-form-urlencoded"


def parse_or_refuse(
    method: str, path: bytes, query: bytes, body: bytes = b"", ctype: str = "", ua: str = ""
) -> ParsedRequest | None:
    try:
        parsed = parse_request(method, path, query, body, ctype, ua)
    except IngestError as error:
        assert error.status in (400, 413, 414)
        assert error.code and error.message
        return None
    check_invariants(parsed)
    return parsed


def check_invariants(parsed: ParsedRequest) -> None:
    assert parsed.event is None or parsed.event in PHONE_EVENTS
    assert parsed.event is None or parsed.event_name is not None
    assert set(parsed.variables) <= set(VARIABLES)
    assert all(value and value == value.strip() for value in parsed.variables.values())
    mac = parsed.variables.get("mac")
    assert mac is None or (len(mac) == 12 and set(mac) <= set("0123456789ABCDEF"))
    assert "duration" not in parsed.variables or parsed.variables["duration"].isdigit()
    assert not {fold(key) for key in parsed.pairs} & {"token", "event"}
    assert parsed.token is None or parsed.token
    texts = [*parsed.pairs, *parsed.pairs.values(), *parsed.variables.values()]
    for text in [*texts, parsed.token or "", parsed.event_name or ""]:
        assert "\x00" not in text
        text.encode("utf-8")  # no lone surrogates: storable and JSON-encodable


@FEW
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "post", "PUT", ""]),
    path=st.binary(max_size=300),
    query=st.binary(max_size=300),
    body=st.binary(max_size=200),
    ctype=st.sampled_from(["", FORM, "text/plain", "application/json; charset=utf-8"]),
    ua=st.text(max_size=40),
)
def test_arbitrary_bytes_only_raise_ingest_error(
    method: str, path: bytes, query: bytes, body: bytes, ctype: str, ua: str
) -> None:
    parse_or_refuse(method, path, query, body, ctype, ua)


@FEW
@given(path=st.text(max_size=200), query=st.text(max_size=200))
def test_arbitrary_text_only_raises_ingest_error(path: str, query: str) -> None:
    parse_or_refuse("GET", path.encode("utf-8", "surrogatepass"), query.encode())


@FEW
@given(
    path=st.text(URL_ALPHABET, max_size=120),
    query=st.text(URL_ALPHABET, max_size=120),
    body=st.text(URL_ALPHABET, max_size=80),
    prefix=st.sampled_from(["", "/", "/ingest/", "/ingest/tok/", "/ingest/tok/dnd_on/", "/x/"]),
)
def test_url_like_text_only_raises_ingest_error(
    path: str, query: str, body: str, prefix: str
) -> None:
    raw = (prefix + path).encode()
    parse_or_refuse("POST", raw, query.encode(), body.encode(), FORM, "snom")


# -- round trip -----------------------------------------------------------------------------

EVENT_NAMES = sorted(
    {(event, event) for event in PHONE_EVENTS}
    | {(name, event) for names in VENDOR_EVENT_NAMES.values() for event, name in names.items()}
)

SPELLINGS = [
    lambda name: name,
    str.upper,
    str.lower,
    lambda name: name.replace(" ", "_"),
    lambda name: name.replace(" ", "-").replace("_", "-"),
    lambda name: name.replace(" ", "").replace("_", ""),
]

# Any text but NUL and surrogates, with no surrounding whitespace, not like a `$placeholder`.
free_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=30
).filter(lambda v: v == v.strip() and v[0] not in "${")
# Numbers: a safe alphabet, as `sip:`, `@` and `;` are stripped from them by design.
number = st.text("0123456789+*#abcXYZ.", min_size=1, max_size=20)
hex12 = st.text("0123456789ABCDEF", min_size=12, max_size=12)


@st.composite
def mac(draw: st.DrawFn) -> tuple[str, str]:
    digits = draw(hex12)
    octets = [digits[i : i + 2] for i in range(0, 12, 2)]
    sent = draw(
        st.sampled_from(
            [
                digits,
                digits.lower(),
                ":".join(octets).lower(),
                "-".join(octets),
                ".".join(digits[i : i + 4] for i in range(0, 12, 4)).lower(),
            ]
        )
    )
    return sent, digits


def same(values: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str]]:
    return values.map(lambda v: (v, v))


VALUE_STRATEGIES: dict[str, st.SearchStrategy[tuple[str, str]]] = {
    **{name: same(free_text) for name in VARIABLES},
    **{name: same(number) for name in ("local", "remote", "active_user")},
    "mac": mac(),
    "duration": st.integers(0, 10**12).map(lambda n: (str(n), str(n))),
    "calldirection": st.sampled_from(
        [("incoming", "incoming"), ("Outbound", "outgoing"), ("called", "incoming"), ("1", "1")]
    ),
}


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, bytes, bytes, bytes, str, ParsedRequest]:
    """A request in one of the shapes, and what parsing it must give."""
    name, event = draw(st.sampled_from(EVENT_NAMES))
    name = draw(st.sampled_from(SPELLINGS))(name)
    token = draw(st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=24))
    chosen = draw(st.sets(st.sampled_from(VARIABLES)))
    sent: dict[str, str] = {}
    expected: dict[str, str] = {}
    for canonical in sorted(chosen):
        key = draw(st.sampled_from((canonical, *VARIABLE_ALIASES[canonical])))
        sent[key], expected[canonical] = draw(VALUE_STRATEGIES[canonical])
    pairs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in sent.items())
    head = f"token={token}&event={quote(name, safe='')}"
    joined = f"{head}&{pairs}" if pairs else head
    shape = draw(st.integers(0, 4))
    method, body, ctype = "GET", "", ""
    if shape == 0:
        path, query = f"/ingest/{token}/{quote(name, safe='')}", pairs
    elif shape == 1:
        path, query = f"/ingest/{token}/{quote(name, safe='')}/{pairs}", ""
    elif shape == 2:
        path, query = f"/{joined}", ""
    elif shape == 3:
        path, query = "/", joined
    else:
        path, query, method, ctype = f"/ingest/{token}", "", "POST", FORM
        body = f"event={quote(name, safe='')}&{pairs}"
    want = ParsedRequest(
        token=token, event_name=name, event=event, variables=expected, pairs=sent, hints=()
    )
    return method, path.encode(), query.encode(), body.encode(), ctype, want


@FEW
@given(request=requests())
def test_round_trip(request: tuple[str, bytes, bytes, bytes, str, ParsedRequest]) -> None:
    method, path, query, body, ctype, want = request
    assert parse_request(method, path, query, body, ctype) == want


@FEW
@given(
    st.lists(
        st.sampled_from(["%", "%20", "%2", "%25", "%zz", "%C3%A9", "%00", "20", "+", " ", "a"]),
        max_size=8,
    ).map("".join),
    st.booleans(),
)
def test_values_decode_as_urllib_does(raw: str, plus: bool) -> None:
    # _decode has a shortcut for `%20`, the escape phones use most: same bytes as urllib.
    data = raw.encode()
    expected = unquote_to_bytes(data.replace(b"+", b" ") if plus else data)
    assert _decode(data, plus=plus) == expected.decode("utf-8", "replace")
