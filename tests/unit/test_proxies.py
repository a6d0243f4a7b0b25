"""Client address behind trusted reverse proxies (pure)."""

from __future__ import annotations

import pytest

from callhook.proxies import TrustedProxies

XFF = b"x-forwarded-for"
FWD = b"forwarded"


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        ("10.0.0.1", [(XFF, b"203.0.113.7")], "203.0.113.7"),
        ("10.0.0.1", [(b"X-Forwarded-For", b"203.0.113.7")], "203.0.113.7"),
        # a client's own (forged) entry stays left of what the proxy appended
        ("10.0.0.1", [(XFF, b"192.168.40.7, 203.0.113.7")], "203.0.113.7"),
        # a chain of trusted proxies is walked through
        ("10.0.0.1", [(XFF, b"203.0.113.7, 10.0.0.2")], "203.0.113.7"),
        ("10.0.0.1", [(XFF, b"203.0.113.7"), (XFF, b"10.0.0.2")], "203.0.113.7"),
        # not from a listed proxy: the header is anyone's
        ("198.51.100.1", [(XFF, b"192.168.40.7")], "198.51.100.1"),
        # nothing forwarded, or unreadable: the proxy is all we know
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", [(XFF, b"unknown")], "10.0.0.1"),
        ("10.0.0.1", [(XFF, b"203.0.113.7, garbage")], "10.0.0.1"),
        ("10.0.0.1", [(XFF, b"[2001:db8::7]:4711")], "2001:db8::7"),
        ("10.0.0.1", [(XFF, b"203.0.113.7:4711")], "203.0.113.7"),
        ("10.0.0.1", [(XFF, b"::ffff:203.0.113.7")], "203.0.113.7"),
        # only the configured header is read
        ("10.0.0.1", [(FWD, b"for=192.168.40.7")], "10.0.0.1"),
    ],
)
def test_x_forwarded_for(peer: str, headers: list[tuple[bytes, bytes]], client: str) -> None:
    assert TrustedProxies(["10.0.0.0/8"]).client(peer, headers) == client


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b"for=203.0.113.7", "203.0.113.7"),
        (b'for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        (b"for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        (b"For=192.168.40.7, for=203.0.113.7;proto=https", "203.0.113.7"),
        (b"for=_hidden", "10.0.0.1"),
    ],
)
def test_forwarded(value: bytes, client: str) -> None:
    proxies = TrustedProxies(["10.0.0.0/8"], "forwarded")
    assert proxies.client("10.0.0.1", [(FWD, value)]) == client
    assert proxies.client("10.0.0.1", [(XFF, b"192.168.40.7")]) == "10.0.0.1"


def test_no_proxies_configured_changes_nothing() -> None:
    proxies = TrustedProxies([])
    assert not proxies
    assert proxies.client("10.0.0.1", [(XFF, b"192.168.40.7")]) == "10.0.0.1"
