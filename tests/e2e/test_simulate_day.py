"""A simulated day against a real hub: 1,000 calls of every flow from 50 phones, each
with the CDR and status it should get, no session left open, presence as the phones left
it."""

from __future__ import annotations

from pathlib import Path

import pytest

from callhook.simulate import run_simulation
from tests.support.simulation import EVERY_FLOW, TOKEN, start_hub, verify

pytestmark = pytest.mark.slow  # about a minute: `make test` starts this file first


async def test_a_simulated_day(tmp_path: Path) -> None:
    """A day's mix scaled to fit a test (docs/simulate.md has the 5,000-call run)."""
    speed, talk = 120.0, 240.0
    hub = start_hub(tmp_path, phones=50, speed=speed, max_talk=talk)
    try:
        result = await run_simulation(
            hub.base, TOKEN, phones=50, calls=1000, rate=40, speed=speed, seed=2026,
            mix=EVERY_FLOW, min_ring=1.0, max_talk=talk,
        )  # fmt: skip
        assert result.failed == 0, result.errors
        assert all(n > 0 for n in result.plan.flows.values()), result.plan.flows
        v = verify(hub, result.calls, result.presence, speed, talk)
        assert v.problems == [], "\n".join(v.problems)
        assert v.matched == len(result.calls) >= 1000
    finally:
        hub.stop()
