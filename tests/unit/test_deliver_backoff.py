"""Retry / give-up decisions and the retry schedule (pure, injected clock and randomness)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callhook.deliver.backoff import (
    GiveUp,
    Retry,
    Success,
    classify,
    next_delay,
    retry_after_seconds,
)

SVIX = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, Success(200)),
        (204, Success(204)),
        (299, Success(299)),
        (500, Retry("HTTP 500")),
        (502, Retry("HTTP 502")),
        (503, Retry("HTTP 503")),
        (429, Retry("HTTP 429")),
        (408, Retry("HTTP 408")),
        (410, GiveUp("410 Gone: endpoint disabled", disable=True)),
        (400, GiveUp("HTTP 400")),
        (401, GiveUp("HTTP 401")),
        (404, GiveUp("HTTP 404")),
        (301, GiveUp("HTTP 301: redirects are not followed")),
        (302, GiveUp("HTTP 302: redirects are not followed")),
    ],
)
def test_status_codes(status: int, expected: object) -> None:
    assert classify(status) == expected


def test_no_response_is_retried_and_refusal_is_not() -> None:
    assert classify(None, error="timeout") == Retry("timeout")
    assert classify(None, error="ConnectionRefused") == Retry("ConnectionRefused")
    assert isinstance(classify(None, error="10.0.0.1 is private", refused=True), GiveUp)


def test_retry_after_is_carried() -> None:
    assert classify(429, retry_after="7", now=NOW) == Retry("HTTP 429", 7.0)
    assert classify(503, retry_after="Wed, 21 Oct 2015 07:28:00 GMT", now=NOW) == Retry(
        "HTTP 503", 0.0
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("-5", None),
        ("Tue, 14 Nov 2023 22:13:30 GMT", 10.0),  # NOW + 10 s
        ("Tue, 14 Nov 2023 22:13:00 GMT", 0.0),  # in the past: now
    ],
)
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value, NOW) == expected


def test_schedule_without_jitter_is_exact_and_ends() -> None:
    delays = [
        next_delay(Retry("x"), n, SVIX, jitter=0, max_retry_after=3600, rand=lambda: 0.5)
        for n in range(1, 9)
    ]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]
    # Svix: eight attempts spread over more than a day.
    assert sum(SVIX) > 86400


@given(
    n=st.integers(min_value=1, max_value=7),
    jitter=st.floats(min_value=0, max_value=1),
    r=st.floats(min_value=0, max_value=1),
)
def test_jitter_stays_within_bounds(n: int, jitter: float, r: float) -> None:
    d = next_delay(Retry("x"), n, SVIX, jitter=jitter, max_retry_after=3600, rand=lambda: r)
    assert d is not None
    # Jitter only lengthens: the schedule is a minimum, so its total is too.
    assert SVIX[n] - 1e-9 <= d <= SVIX[n] * (1 + jitter) + 1e-9


@given(rs=st.lists(st.floats(min_value=0, max_value=1), min_size=7, max_size=7))
def test_last_attempt_lands_after_a_day_whatever_the_jitter(rs: list[float]) -> None:
    # The default schedule promises at least a day of retries; with ±20 % jitter 1.6 % of
    # deliveries once gave up before 24 h (all delays drawn short).
    draws = iter(rs)
    delays = [
        next_delay(Retry("x"), n, SVIX, jitter=0.2, max_retry_after=3600, rand=lambda: next(draws))
        for n in range(1, 8)
    ]
    assert all(d is not None for d in delays)
    assert sum(d for d in delays if d is not None) > 86400
    # all drawn at the bottom: exactly the schedule
    lowest = [
        next_delay(Retry("x"), n, SVIX, jitter=0.2, max_retry_after=3600, rand=lambda: 0.0)
        for n in range(1, 8)
    ]
    assert lowest == SVIX[1:]


@given(
    after=st.floats(min_value=0, max_value=10**6),
    n=st.integers(min_value=1, max_value=7),
    r=st.floats(min_value=0, max_value=1),
)
def test_retry_after_lengthens_within_cap_and_never_shortens(
    after: float, n: int, r: float
) -> None:
    d = next_delay(Retry("x", after), n, SVIX, jitter=0.2, max_retry_after=3600, rand=lambda: r)
    scheduled = next_delay(Retry("x"), n, SVIX, jitter=0.2, max_retry_after=3600, rand=lambda: r)
    assert d is not None and scheduled is not None
    capped = min(after, 3600)
    assert d >= scheduled - 1e-9  # never earlier than the (jittered) schedule
    assert d >= capped - 1e-9  # the server's wish, up to the cap
    assert d <= max(scheduled, capped * 1.2) + 1e-9


@pytest.mark.parametrize("after", [0.0, 1.0, 4.0])
def test_short_or_past_retry_after_keeps_the_schedule(after: float) -> None:
    # `Retry-After: 0` / `1` or an HTTP-date already past (0 s) must not turn a day-long
    # schedule into seconds: each retry waits at least what the schedule says.
    delays = [
        next_delay(Retry("x", after), n, SVIX, jitter=0, max_retry_after=3600, rand=lambda: 0.5)
        for n in range(1, 9)
    ]
    assert delays == [5, 300, 1800, 7200, 18000, 36000, 36000, None]


def test_longer_retry_after_wins_up_to_the_cap() -> None:
    def delay(after: float, n: int = 1) -> float | None:
        return next_delay(
            Retry("x", after), n, SVIX, jitter=0, max_retry_after=3600, rand=lambda: 0
        )

    assert delay(120) == 120  # longer than the scheduled 5 s: the server's wish
    assert delay(10**6) == 3600  # capped
    assert delay(10**6, n=4) == 7200  # the cap never shortens the schedule either


def test_retry_after_jitter_only_lengthens() -> None:
    d = next_delay(Retry("x", 100), 1, SVIX, jitter=0.2, max_retry_after=3600, rand=lambda: 1)
    assert d == pytest.approx(120)
    d = next_delay(Retry("x", 100), 1, SVIX, jitter=0.2, max_retry_after=3600, rand=lambda: 0)
    assert d == pytest.approx(100)


def test_retry_after_does_not_extend_the_number_of_attempts() -> None:
    assert (
        next_delay(Retry("x", 1), 3, [0, 1, 1], jitter=0, max_retry_after=9, rand=lambda: 0) is None
    )
