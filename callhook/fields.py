"""Field rules shared by the config file and the admin API, so both doors accept one language.

The API states them as JSON Schema (`pattern`, `max_length`: /openapi.json shows them); the
config loader applies the same constants through the `check_*` functions, whose messages
say what is expected. Values are the only input: these functions know nothing of either door.
"""

from __future__ import annotations

import ipaddress
import math
import re

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
