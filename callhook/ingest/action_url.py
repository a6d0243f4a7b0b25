"""Action URL requests -> ParsedRequest: the pure parser for the request shapes of docs/api.md.

Shapes (all may add a query string, and a POST may add a form body; later sources win):

1. `/ingest/{token}/{event}?k=v&...`
2. `/ingest/{token}/{event}/k=v&...` (and `/ingest/{token}/k=v&...` with an `event=` pair)
3. `/token={token}&event={event}&k=v&...` at the root, after any prefix, or as `/?token=...`
4. `/k=v&...` with no event: accepted, hinted `url-has-no-event-name`

The parser does no I/O and raises nothing but IngestError, whatever the bytes.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from callhook.ingest.model import ParsedRequest
from callhook.ingest.vendors import (
    DEFAULT_VENDOR,
    EVENT_BY_FOLDED,
    VARIABLE_ALIASES,
    VARIABLE_BY_FOLDED,
    VENDOR_BY_FOLDED,
    fold,
    vendor_from_user_agent,
)

MAX_URL_BYTES = 8192  # 414 above 8 KiB of path and query
MAX_BODY_BYTES = 65536  # every input has a size limit

HINT_NO_EVENT = "url-has-no-event-name"
HINT_BAD_MAC = "bad-mac"
HINT_BAD_DURATION = "bad-duration"
HINT_UNKNOWN_VENDOR = "unknown-vendor"
HINT_BODY_IGNORED = "body-ignored"
HINT_EXTRA_SEGMENTS = "ignored-path-segments"
HINT_SNOM_DIRECTION = "snom-direction-unknown"


class IngestError(Exception):
    """A request the parser refuses: an HTTP status, a stable code and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


_FORM = "application/x-www-form-urlencoded"
# Single bytes are tested as ints: `43 in raw` is a memchr, `b"+" in raw` many times slower.
_NUL, _HASH, _PERCENT, _PLUS, _EQUALS = 0, ord("#"), ord("%"), ord("+"), ord("=")
_AMP = ord("&")
# Variables that hold a number or SIP user, from which URIs and display names are stripped.
_NUMBER_FIELDS = frozenset({"local", "remote", "active_user"})
_HEX = frozenset("0123456789ABCDEF")
_PLACEHOLDER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
# `$calldirection` is "whether the phone is calling party or called party" (Grandstream's guides);
# no public source shows its values, so accept the usual words for either side. Numeric codes
# (0/1) stay raw: nothing says which is which.
_DIRECTION_BY_FOLDED: dict[str, str] = {
    **dict.fromkeys(
        ("in", "incoming", "inbound", "called", "calledparty", "callee", "received"), "incoming"
    ),
    **dict.fromkeys(
        ("out", "outgoing", "outbound", "calling", "callingparty", "caller", "dialed", "dialled"),
        "outgoing",
    ),
}
# The keys phones send, as sent: raw bytes -> (key, folded key); spares the hot path
# decoding and folding them.
_KNOWN_KEYS: dict[bytes, tuple[str, str]] = {
    name.encode(): (name, fold(name))
    for name in (
        *(
            alias
            for canonical, aliases in VARIABLE_ALIASES.items()
            for alias in (canonical, *aliases)
        ),
        *("token", "event", "vendor", "active_url"),
    )
}
# Snom events of a call already under way, where $local/$remote cannot be told apart
# without a direction (see _resolve_snom).
_SNOM_AMBIGUOUS_EVENTS = frozenset(
    {"establish_call", "terminate_call", "hold_call", "resume_call"}
    | {"blind_transfer", "attended_transfer"}
)


def _refuse_nul(raw: bytes) -> None:
    # Nothing downstream should have to store a NUL (PostgreSQL text refuses it). A decoded
    # NUL can only come from a NUL byte or a `%00`, so one scan of the raw bytes finds it.
    if _NUL in raw or (_PERCENT in raw and b"%00" in raw):
        raise IngestError(400, "bad-encoding", "the URL holds a NUL character")


def _decode(raw: bytes, *, plus: bool = False) -> str:
    """Percent-decode as UTF-8 (bad bytes become U+FFFD); `plus`: `+` is a space.

    Values are percent-decoded only: in a URL a `+` is itself (a SIP Call-ID or a display
    name may hold one). Only names (`Incoming+Call`) and form bodies read it as a space.
    """
    if plus and _PLUS in raw:
        raw = raw.replace(b"+", b" ")
    if _PERCENT in raw:
        # Phones' usual escape is a space (`Incoming%20Call`): one C replace, exact when
        # no other `%` is left; anything else is decoded from the original bytes.
        spaced = raw.replace(b"%20", b" ")
        raw = unquote_to_bytes(raw) if _PERCENT in spaced else spaced
    return raw.decode("utf-8", "replace")


def _name(raw: bytes) -> str:
    """An event or variable name: `+` is a space (`Incoming+Call`), as folding ignores it."""
    return _decode(raw, plus=True).strip()


def target_length(raw_path: bytes, query_string: bytes) -> int:
    """Bytes of the request target: the path, and `?` and the query if there is one."""
    return len(raw_path) + (len(query_string) + 1 if query_string else 0)


def _split_pairs(text: bytes, into: list[tuple[bytes, bytes, bool]], form: bool = False) -> None:
    """Append the `k=v` pairs of `text`, split on `&`; a pair without `=` has an empty value.
    `form`: they come from a form body, whose values read `+` as a space."""
    _refuse_nul(text)
    parts = text.split(b"&")
    if _HASH in text:
        parts = [piece for part in parts for piece in _split_fragment(part)]
    for part in parts:
        key, _, value = part.partition(b"=")
        if key:
            into.append((key, value, form))


def _split_fragment(part: bytes) -> list[bytes]:
    # Snom may send pairs in a fragment: `x=1#mac=...`. A `#` followed by no
    # `=` is part of a value (`remote=*72#`).
    pieces = part.split(b"#")
    out = [pieces[0]]
    for piece in pieces[1:]:
        if _EQUALS in piece:
            out.append(piece)
        else:
            out[-1] += b"#" + piece
    return out


def mend_hashes(target: bytes) -> bytes:
    """A request target as a phone wrote it, with each raw `#` made unambiguous for HTTP.

    Phones substitute values unencoded: `remote=*72#`, `display_remote=Room#5`. To HTTP a
    `#` starts a fragment, which servers drop, and with it the rest of the request (the
    call id). A `#` that starts a pair (Snom's `x=1#mac=...`: what follows it holds an `=`
    before the next `&` or `#`) becomes `&`; any other is part of a value and becomes `%23`.
    """
    if _HASH not in target:
        return target
    pieces = target.split(b"#")
    out = [pieces[0]]
    for piece in pieces[1:]:
        out.append(b"&" if _EQUALS in piece.partition(b"&")[0] else b"%23")
        out.append(piece)
    return b"".join(out)


def _known_key(raw_key: bytes) -> bool:
    """Whether `raw_key` names a phone variable (any spelling), `token`, `event` or `vendor`."""
    if raw_key in _KNOWN_KEYS:
        return True
    folded = fold(_name(raw_key))
    return folded in VARIABLE_BY_FOLDED or folded in ("token", "event", "vendor", "activeurl")


def _path_pairs(segments: list[bytes]) -> bytes:
    """Path segments holding pairs, as one `&`-separated run. Grandstream's ActionURL guide
    says to separate the variables with a `/` (`/mac=.../local=101`), and phones do not
    encode a `/` in values (`display_remote=A/B`): a `/` followed by a known `key=`
    separates pairs, any other stays in the value."""
    out = [segments[0]]
    for segment in segments[1:]:
        key, eq, _ = segment.partition(b"=")
        starts_pair = eq and _AMP not in key and _known_key(key)
        out.append(b"&" if starts_pair else b"/")
        out.append(segment)
    return b"".join(out)


def _route(
    path: bytes, raw: list[tuple[bytes, bytes, bool]], hints: list[str]
) -> tuple[str | None, str | None, bool]:
    """Read the path: (token, event name, is an /ingest/ path); pairs found go to `raw`."""
    _refuse_nul(path)
    segments = path.strip(b"/").split(b"/")
    if segments[0].lower() == b"ingest":
        token = _decode(segments[1]).strip() if len(segments) > 1 else ""
        if not token:
            raise IngestError(400, "unrecognised-url", "an /ingest/ URL must name a token")
        rest = segments[2:]
        event_name = None
        if rest and _EQUALS not in rest[0]:
            event_name = _name(rest[0]) or None
            rest = rest[1:]
        start = _first_pairs_segment(rest)
        if start:
            hints.append(HINT_EXTRA_SEGMENTS)
        if start < len(rest):
            _split_pairs(_path_pairs(rest[start:]), raw)
        return token, event_name, True
    start = _first_pairs_segment(segments)
    if start < len(segments):
        # The rest of the path is one run of pairs: Grandstream does not encode `/` in values.
        _split_pairs(_path_pairs(segments[start:]), raw)
    return None, None, False


def _first_pairs_segment(segments: list[bytes]) -> int:
    for index, segment in enumerate(segments):
        if _EQUALS in segment:
            return index
    return len(segments)


def _is_placeholder(value: str) -> bool:
    """True for a variable the phone left unsubstituted: `$name`, `$$NAME$$`, `{name}`."""
    first = value[0]
    if first == "$":
        inner = (
            value[2:-2]
            if len(value) > 4 and value.startswith("$$") and value.endswith("$$")
            else value[1:]
        )
    elif first == "{" and value[-1] == "}":
        inner = value[1:-1]  # GRP "Action URL Notification" placeholders (newer firmware)
    else:
        return False
    return bool(inner) and _PLACEHOLDER_CHARS.issuperset(inner)


def _sip_user(value: str) -> str:
    """`"Bob" <sip:101@pbx;user=phone>` -> `101`: the user part of a URI, or the value."""
    if value.isalnum():
        return value  # a bare number or user name, the usual case
    lt = value.find("<")
    if lt >= 0:
        gt = value.find(">", lt)
        value = value[lt + 1 : gt] if gt >= 0 else value[lt + 1 :]
        value = value.strip()
    head = value[:5].lower()
    if head.startswith("sips:"):
        value = value[5:]
    elif head.startswith(("sip:", "tel:")):
        value = value[4:]
    for stop in "@;?":
        cut = value.find(stop)
        if cut >= 0:
            value = value[:cut]
    return value.strip()


def _uri_host(value: str) -> str:
    """The host of a SIP URI (`sip:101@pbx:5060;x` -> `pbx:5060`), or "" if it has none."""
    at = value.find("@")
    if at < 0:
        return ""
    host = value[at + 1 :]
    for stop in ";?>":
        cut = host.find(stop)
        if cut >= 0:
            host = host[:cut]
    return host.strip()


def _mac(value: str) -> str | None:
    """`00:0b:82:11:22:33`, `00-0B-82-...`, `000b.8211.2233` -> `000B82112233`; else None."""
    compact = value.replace(":", "").replace("-", "").replace(".", "").upper()
    if len(compact) == 12 and compact.isascii() and _HEX.issuperset(compact):
        return compact
    return None


def _duration(value: str) -> str | None:
    """Whole seconds as digits: `42`, `0042`, or `[h:]mm:ss`; None if not a duration."""
    if value.isascii() and value.isdigit():
        return value.lstrip("0") or "0"  # not int(): 4,300+ digits would raise
    parts = value.split(":")
    if 2 <= len(parts) <= 3 and all(p.isascii() and p.isdigit() and len(p) <= 9 for p in parts):
        seconds = 0
        for part in parts:
            seconds = seconds * 60 + int(part)
        return str(seconds)
    return None


def _variables(texts: dict[str, str], hints: list[str]) -> dict[str, str]:
    """Normalise the last value sent for each canonical variable; leave out the absent."""
    variables: dict[str, str] = {}
    for name, text in texts.items():
        value: str | None = text.strip()
        if not value or _is_placeholder(value):
            continue
        if name in _NUMBER_FIELDS:
            value = _sip_user(value)
        elif name == "mac":
            value = _mac(value)
            if value is None:
                hints.append(HINT_BAD_MAC)
        elif name == "duration":
            value = _duration(value)
            if value is None:
                hints.append(HINT_BAD_DURATION)
        elif name == "calldirection":
            value = _DIRECTION_BY_FOLDED.get(fold(value).replace("+", ""), value.lower())
        if value:
            variables[name] = value
    return variables


def _resolve_snom(variables: dict[str, str], event: str | None, hints: list[str]) -> None:
    """Make `local` this phone for Snom, whose `$local` is always the callee (Snom's guide).

    On a call this phone placed (event outgoing_call, or calldirection outgoing) the callee is
    the other party, so local and remote (and their display names) swap. Incoming and missed
    calls need no swap. For other call events without a direction the roles are unknown:
    values stay as sent, with a hint, for the correlator to settle by call_id.
    """
    direction = variables.get("calldirection")
    if event == "outgoing_call" or direction == "outgoing":
        for ours, theirs in (("local", "remote"), ("display_local", "display_remote")):
            mine, other = variables.pop(theirs, None), variables.pop(ours, None)
            if mine is not None:
                variables[ours] = mine
            if other is not None:
                variables[theirs] = other
    elif (
        direction is None
        and event in _SNOM_AMBIGUOUS_EVENTS
        and ("local" in variables or "remote" in variables)
    ):
        hints.append(HINT_SNOM_DIRECTION)


def parse_request(
    method: str,
    raw_path: bytes,
    query_string: bytes,
    body: bytes = b"",
    content_type: str = "",
    user_agent: str = "",
) -> ParsedRequest:
    """Parse one Action URL request; raise IngestError (400/413/414) if it cannot be read.

    `raw_path` is the percent-encoded path as on the request line (ASGI `raw_path`) and
    `query_string` the bytes after `?`. `method` only decides whether a form body is read.
    """
    if target_length(raw_path, query_string) > MAX_URL_BYTES:
        raise IngestError(414, "uri-too-long", f"the URL is over {MAX_URL_BYTES} bytes")
    if len(body) > MAX_BODY_BYTES:
        raise IngestError(413, "body-too-large", f"the body is over {MAX_BODY_BYTES} bytes")
    raw_path, _, extra_query = raw_path.partition(b"?")  # a whole request target, tolerated
    hints: list[str] = []
    raw: list[tuple[bytes, bytes, bool]] = []
    token, event_name, is_ingest = _route(raw_path, raw, hints)
    for source in (extra_query, query_string):
        if source:
            _split_pairs(source, raw)
    if body and method.upper() == "POST":
        if content_type.partition(";")[0].strip().lower() == _FORM:
            _split_pairs(body, raw, form=True)
        else:
            hints.append(HINT_BODY_IGNORED)
    if not is_ingest and not raw:
        raise IngestError(400, "unrecognised-url", "the URL holds neither /ingest/ nor k=v pairs")

    pairs: dict[str, str] = {}
    texts: dict[str, str] = {}  # canonical variable -> its last value as sent
    vendor_sent = active_url = pair_token = pair_event = None
    for raw_key, raw_value, form in raw:
        known = _KNOWN_KEYS.get(raw_key)
        if known is None:
            key = _name(raw_key)
            if not key:
                continue
            folded = fold(key)
        else:
            key, folded = known
        if folded == "token":
            pair_token = _decode(raw_value, plus=form).strip() or None
            continue
        if folded == "event":
            pair_event = _name(raw_value) or None
            continue
        canonical = VARIABLE_BY_FOLDED.get(folded)
        # Phones send E.164 numbers unencoded (`remote=sip:+4971...@pbx`), forms included.
        text = _decode(raw_value, plus=form and canonical not in _NUMBER_FIELDS)
        pairs[key] = text
        if canonical is not None:
            texts[canonical] = text
        elif folded == "vendor":
            vendor_sent = text.strip()
        elif folded == "activeurl":
            active_url = text.strip()
    # What the path says wins over a pair; of pairs, the last wins.
    token = token or pair_token
    event_name = event_name or pair_event

    variables = _variables(texts, hints)
    if active_url and not _is_placeholder(active_url):
        # Yealink/Snom `$active_url` is the whole account URI.
        if "active_user" not in variables and (user := _sip_user(active_url)):
            variables["active_user"] = user
        if "active_host" not in variables and (host := _uri_host(active_url)):
            variables["active_host"] = host

    vendor = VENDOR_BY_FOLDED.get(fold(vendor_sent)) if vendor_sent else None
    if vendor_sent and vendor is None:
        hints.append(HINT_UNKNOWN_VENDOR)
    vendor = vendor or vendor_from_user_agent(user_agent) or DEFAULT_VENDOR

    event = EVENT_BY_FOLDED.get(fold(event_name)) if event_name else None
    if event_name is None:
        hints.append(HINT_NO_EVENT)
    if vendor == "snom":
        _resolve_snom(variables, event, hints)
    return ParsedRequest(
        token=token,
        event_name=event_name,
        event=event,
        variables=variables,
        pairs=pairs,
        vendor=vendor,
        hints=tuple(dict.fromkeys(hints)) if hints else (),
    )
