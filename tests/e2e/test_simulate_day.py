"""A simulated day against a real hub: 1,000 calls of every flow from 50 phones, each
with the CDR and status it should get, no session left open, presence as the phones left
it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.simulation import EVERY_FLOW, simulated

pytestmark = pytest.mark.slow  # about a minute: `make test` starts this file first


async def test_a_simulated_day(tmp_path: Path) -> None:
    """A day's mix scaled to fit a test (docs/simulate.md has the 5,000-call run)."""
    result, v = await simulated(
        tmp_path, phones=50, speed=120.0, talk=240.0, calls=1000, rate=40, seed=2026,
        mix=EVERY_FLOW, min_ring=1.0,
    )  # fmt: skip
    assert result.failed == 0, result.errors
    assert all(n > 0 for n in result.plan.flows.values()), result.plan.flows
    assert v.problems == [], "\n".join(v.problems)
    assert v.matched == len(result.calls) >= 1000
