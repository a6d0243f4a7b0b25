"""Field rules shared by the config file, the admin API and delivery: one rule, one place.

The API states them as JSON Schema (`pattern`, `max_length`: /openapi.json shows them) and
calls the same `check_*` functions; the config loader applies them too, and delivery decodes
secrets and checks target URLs with them, so what one door accepts the others honour.
Their messages say what is expected. Values are the only input: these functions know
nothing of any door.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from typing import Literal, get_args
from urllib.parse import urlsplit

from callhook.events import KEY_TOPIC, TOPICS

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"  # tenants, groups, trunks
NUMBER_PATTERN = r"^[0-9A-Za-z*#+_.-]{1,32}$"  # extensions, queues
# Ingest tokens travel in URL paths and `token=` pairs: no `&`, `=`, `/` or `%`.
TOKEN_PATTERN = r"^[A-Za-z0-9_.~-]{6,128}$"
DOMAIN_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$"
NETWORK_PATTERN = r"^[0-9A-Fa-f:.]{2,45}(/[0-9]{1,3})?$"

PASSWORD_MAX = 256
DISPLAY_NAME_MAX = 128
NETWORKS_MAX = 64
GROUPS_MAX = 64
MEMBERS_MAX = 10_000
SCHEDULE_MAX_LEN = 30
SCHEDULE_MAX_DELAY = 7 * 86400

_NAME = re.compile(NAME_PATTERN)
_NUMBER = re.compile(NUMBER_PATTERN)
_TOKEN = re.compile(TOKEN_PATTERN)
_DOMAIN = re.compile(DOMAIN_PATTERN)
_NETWORK = re.compile(NETWORK_PATTERN)


def check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("expected letters, digits, '.', '_' or '-' (at most 64)")
    return value


def check_number(value: str) -> str:
    if not _NUMBER.fullmatch(value):
        raise ValueError("expected a number like 101: letters, digits, * # + _ . - (at most 32)")
    return value


def check_token(value: str) -> str:
    if not _TOKEN.fullmatch(value):
        raise ValueError(
            "expected 6 to 128 letters, digits, '_', '.', '~' or '-' (it goes in URLs)"
        )
    return value


def check_domain(value: str) -> str:
    if not _DOMAIN.fullmatch(value):
        raise ValueError("expected a domain such as acme.example.com")
    return value


def check_text(value: str) -> str:
    """Reject text that cannot be stored: lone surrogates (valid JSON, invalid UTF-8), NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text") from None
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


# VoipNow's "extended" extension numbers are `yyyy*zzz`: this prefix, `*`, the extension.
EXTENDED_PREFIX_PATTERN = r"^[0-9]{1,16}$"
_EXTENDED_PREFIX = re.compile(EXTENDED_PREFIX_PATTERN)


def check_extended_prefix(value: str) -> str:
    """A tenant's extended-number prefix (`0003` makes extension 101 `0003*101`); "" for none."""
    if value and not _EXTENDED_PREFIX.fullmatch(value):
        raise ValueError("expected 1 to 16 digits, such as 0003 (extensions become 0003*101)")
    return value


def extended_number(prefix: str, number: str) -> str:
    """`0003*101` for extension 101 under prefix 0003; the number itself without a prefix."""
    return f"{prefix}*{number}" if prefix and number else number


def check_network(value: str) -> str:
    """`192.168.40.7/24` -> `192.168.40.0/24`."""
    try:
        if not _NETWORK.fullmatch(value):
            raise ValueError
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise ValueError("expected a network such as 192.168.40.0/24") from None


def check_schedule(value: list[float]) -> list[float]:
    """A webhook retry schedule: delays in seconds (the global default and per endpoint)."""
    if not 1 <= len(value) <= SCHEDULE_MAX_LEN or not all(
        math.isfinite(x) and 0 <= x <= SCHEDULE_MAX_DELAY for x in value
    ):
        raise ValueError(
            f"expected 1 to {SCHEDULE_MAX_LEN} delays in seconds,"
            f" each from 0 to {SCHEDULE_MAX_DELAY} (7 days)"
        )
    return value


# -- webhooks and Call Events rules ----------------------------------------------------------
# A signing secret is `whsec_` and the base64 of 24 to 64 random bytes (Standard Webhooks:
# Svix makes 24). The pattern is the JSON Schema form; `secret_key` is the exact rule.
SECRET_PREFIX = "whsec_"
SECRET_MIN_BYTES, SECRET_MAX_BYTES = 24, 64
SECRET_PATTERN = r"^whsec_[A-Za-z0-9+/]{32,88}={0,2}$"
SECRET_RULE = "whsec_ followed by the base64 of 24 to 64 bytes"


def secret_key(value: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret; ValueError saying why it is not one."""
    if not value.startswith(SECRET_PREFIX):
        raise ValueError(f"expected {SECRET_RULE}")
    raw = value[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"expected {SECRET_RULE} (the part after whsec_ is not base64)") from None
    if not SECRET_MIN_BYTES <= len(key) <= SECRET_MAX_BYTES:
        raise ValueError(f"expected {SECRET_RULE} (it holds {len(key)} bytes)")
    return key


def check_secret(value: str) -> str:
    secret_key(value)
    return value


# The Call Events rule events (VoipNow's Call Events page); any canonical event key is also
# accepted as a rule event.
CALL_EVENT_NAMES: tuple[str, ...] = (
    "dial_in",
    "dial_out",
    "answer_incoming",
    "answer_outgoing",
    "hangup",
)


def _fold_event(value: str) -> str:
    return "".join(c for c in value.lower() if c.isalnum())


# VoipNow's own spellings of its events (its Call Events page: "Dial-In", "Dial-Out",
# "Hangup", "Answer on incoming call", "Answer on outgoing call (by the other party)"), and
# every canonical key, matched ignoring case, spaces, `-`, `_` and punctuation.
CALL_EVENT_SPELLINGS: dict[str, str] = {
    **{_fold_event(key): key for key in KEY_TOPIC},
    **{_fold_event(name): name for name in CALL_EVENT_NAMES},
    _fold_event("Answer on incoming call"): "answer_incoming",
    _fold_event("Answer incoming call"): "answer_incoming",
    _fold_event("Answer on outgoing call"): "answer_outgoing",
    _fold_event("Answer outgoing call"): "answer_outgoing",
    _fold_event("Answer on outgoing call (by the other party)"): "answer_outgoing",
    _fold_event("Hang up"): "hangup",
}


def check_call_event(value: str) -> str:
    """A Call Events rule's event, as stored: a rule event name or a canonical event key.
    VoipNow's spellings (`Dial-In`, `Hangup`, `Answer on incoming call`) are read as ours."""
    name = CALL_EVENT_SPELLINGS.get(_fold_event(value)) if len(value) <= 64 else None
    if name is not None:
        return name
    raise ValueError(f"unknown event {value!r}: use {', '.join(CALL_EVENT_NAMES)} or an event key")


def upper_method(value: object) -> object:
    """A rule's request method in any case (`get`, `Post`), as stored: upper case. Anything
    else goes on to the type check, which names the allowed values."""
    return value.strip().upper() if isinstance(value, str) else value


def check_topic(value: str) -> str:
    if value not in TOPICS:
        raise ValueError(f"unknown topic {value!r}: use {', '.join(TOPICS)}")
    return value


def check_key(value: str) -> str:
    if value not in KEY_TOPIC:
        raise ValueError(f"unknown event key {value!r}")
    return value


URL_MAX = 2048


def check_target_url(value: str) -> str:
    """A webhook or rule target: http(s), a host without variables, no credentials. Whether
    the host may be reached (private addresses) is decided by deliver/targets.py."""
    if len(value) > URL_MAX:
        raise ValueError(f"the URL is longer than {URL_MAX} characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if "$" in parts.netloc:
        raise ValueError("variables are not allowed in the host part of the URL")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not supported; use a secret")
    if any(c.isspace() for c in parts.netloc):
        raise ValueError("the host part of the URL holds a space")
    return value


# -- phone vendors ---------------------------------------------------------------------------
# Vendors a phone URL can be made for (phone-urls, the API, the dashboard). Aastra/Mitel's
# `$$NAME$$` dialect is accepted on ingest, but no event list of theirs is known to print.
PhoneUrlVendor = Literal["grandstream", "yealink", "snom", "fanvil"]
PHONE_URL_VENDORS: tuple[str, ...] = get_args(PhoneUrlVendor)
