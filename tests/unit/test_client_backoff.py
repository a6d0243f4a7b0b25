"""WsiClient's pauses between connection attempts (the reconnects themselves are tested
against a real hub in tests/e2e/test_wsi_resume.py)."""

from __future__ import annotations

import pytest

from callhook.client import Backoff


def bounds(b: Backoff, failures: int) -> tuple[float, float]:
    step = min(b.cap, b.low * 2 ** (failures - 1))
    return step * 0.5, step


def test_pauses_double_up_to_the_cap_with_jitter() -> None:
    b = Backoff(0.2, 30.0)
    for failures in range(1, 20):
        low, high = bounds(b, failures)
        assert low <= b.pause(float(failures)) <= high
    assert bounds(b, 19) == (15.0, 30.0)


def test_a_connection_dropped_at_once_does_not_start_the_pauses_again() -> None:
    b = Backoff(0.2, 30.0)
    now = 0.0
    for _ in range(8):  # accepted, subscribed, closed a second later: again and again
        b.pause(now)
        now += 1.0
        b.connected(now)
        now += 1.0
    assert b.failures == 8
    assert b.pause(now) >= bounds(b, 9)[0] == 15.0


def test_a_connection_that_stayed_up_starts_the_pauses_again() -> None:
    b = Backoff(0.2, 30.0)
    for t in range(6):
        b.pause(float(t))
    b.connected(100.0)
    assert b.pause(130.0) <= 0.2  # up 30 s (the longest pause): the first pause again
    assert b.failures == 1


@pytest.mark.parametrize("stable", [0.0, 5.0])
def test_stable_can_be_set(stable: float) -> None:
    b = Backoff(1.0, 60.0, stable=stable)
    b.pause(0.0)
    b.pause(1.0)
    b.connected(10.0)
    b.pause(15.0)
    assert b.failures == 1
