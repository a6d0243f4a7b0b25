"""Brute-force limits (pure): only failures count; reservations bound the checks in flight
to the failures still allowed; canonical account keys."""

from __future__ import annotations

import asyncio

import pytest

from callhook.directory import Extension, Tenant
from callhook.limits import Attempt, Refused
from callhook.limits.local import LocalLimiter
from callhook.wsi.auth import account_key, find_tenant
from callhook.wsi.protocol import Auth


def test_checks_in_flight_are_bounded_by_the_failures_still_allowed() -> None:
    lim = LocalLimiter(limit=3, window=60)
    got = [lim.try_reserve("k", now=1.0 + i / 10) for i in range(5)]
    assert [isinstance(g, Attempt) for g in got] == [True, True, True, False, False]
    assert got[3] is None and got[4] is None  # full: wait, not refused
    assert not lim.blocked("k")  # nothing failed yet


def test_only_failures_count() -> None:
    lim = LocalLimiter(limit=2, window=10)
    for i in range(10):  # ten right logins in a row: never limited
        a = lim.try_reserve("k", now=float(i))
        assert isinstance(a, Attempt)
        lim.end(a, failed=False, now=float(i))
    a, b = lim.try_reserve("k", now=10.0), lim.try_reserve("k", now=10.0)
    assert isinstance(a, Attempt) and isinstance(b, Attempt)
    lim.end(a, failed=True, now=10.0)
    assert lim.try_reserve("k", now=10.5) is None  # one failure, one in flight: full
    lim.end(b, failed=True, now=11.0)
    refused = lim.try_reserve("k", now=12.0)
    assert isinstance(refused, Refused) and refused.retry_after == pytest.approx(8.0)
    assert isinstance(lim.try_reserve("k", now=21.5), Attempt)  # both aged out


def test_a_success_with_forget_clears_the_failures() -> None:
    lim = LocalLimiter(limit=2, window=60)
    lim.failed("k", now=0.0)
    a = lim.try_reserve("k", now=1.0)
    assert isinstance(a, Attempt)
    lim.end(a, failed=False, forget=True, now=1.0)
    assert lim.failures("k", now=2.0) == 0


def test_keys_are_independent_and_bounded() -> None:
    lim = LocalLimiter(limit=1, window=60, max_keys=3)
    lim.failed("a", now=0)
    assert isinstance(lim.try_reserve("a", now=0), Refused)
    assert isinstance(lim.try_reserve("b", now=0), Attempt)
    for k in "cdef":
        lim.failed(k, now=0)
    assert isinstance(lim.try_reserve("a", now=1), Attempt)  # the oldest key was dropped


def test_a_waiting_attempt_gets_in_when_a_check_ends_and_gives_up_busy() -> None:
    async def run() -> None:
        lim = LocalLimiter(limit=1, window=60)
        first = await lim.begin("k")
        assert isinstance(first, Attempt)
        waiting = asyncio.create_task(lim.begin("k"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await lim.finish(first, failed=False)
        assert isinstance(await waiting, Attempt)
        assert await lim.begin("k", wait=0.05) == Refused(busy=True)
        assert not lim._ended and not lim._waiting  # nothing kept for keys nobody waits on

    asyncio.run(run())


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
