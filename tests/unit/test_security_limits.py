"""Brute-force limits (pure): reserve before the check, release on success; canonical
account keys."""

from __future__ import annotations

import pytest

from callhook.directory import Extension, Tenant
from callhook.security import RateLimiter
from callhook.wsi.auth import account_key, find_tenant
from callhook.wsi.protocol import Auth


def test_reservations_count_before_any_check_finishes() -> None:
    lim = RateLimiter(limit=3, window=60)
    tokens = [lim.reserve("k", now=1.0 + i / 10) for i in range(5)]
    assert [t is not None for t in tokens] == [True, True, True, False, False]
    assert lim.blocked("k", now=2.0)


def test_release_uncounts_one_attempt_and_the_window_frees_the_rest() -> None:
    lim = RateLimiter(limit=2, window=10)
    a = lim.reserve("k", now=0.0)
    b = lim.reserve("k", now=1.0)
    assert a is not None and b is not None
    assert lim.reserve("k", now=2.0) is None
    lim.release("k", a)
    assert lim.reserve("k", now=2.0) is not None
    assert lim.reserve("k", now=3.0) is None
    assert lim.reserve("k", now=11.5) is not None  # b (1.0) and a's successor aged out
    lim.release("k", 999.0)  # an unknown token changes nothing


def test_keys_are_independent_and_bounded() -> None:
    lim = RateLimiter(limit=1, window=60, max_keys=3)
    assert lim.reserve("a", now=0) is not None and lim.reserve("a", now=0) is None
    assert lim.reserve("b", now=0) is not None
    for k in "cdef":
        lim.reserve(k, now=0)
    assert lim.reserve("a", now=1) is not None  # the oldest key was dropped


ACME = Tenant(
    "acme", "1", "acme.example.com", extensions={"101": Extension("101"), "102": Extension("102")}
)
TENANTS = {"acme": ACME, "globex": Tenant("globex", "2", "globex.example.com")}


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        (Auth(password="x", extension="101", domain="acme.example.com"), "acme/101"),
        (Auth(password="x", extension="101", domain="ACME.example.com"), "acme/101"),
        (Auth(password="x", extension="101", domain="acme"), "acme/101"),
        (Auth(password="x", extension="101", domain="Acme"), "acme/101"),
        (Auth(password="x", extension="101"), "acme/101"),  # unique across tenants
        (Auth(password="x", tenant="acme"), "acme"),
        (
            Auth(password="x", extension="101", domain="Evil.example"),
            "unknown:ext:101@evil.example",
        ),
    ],
)
def test_account_key_is_canonical(auth: Auth, expected: str) -> None:
    assert account_key(find_tenant(TENANTS, auth), auth) == expected
