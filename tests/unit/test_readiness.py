"""/readyz's database probe: one ping in flight, shared by every caller meanwhile."""

from __future__ import annotations

import asyncio

from callhook.ops import ReadinessProbe


class SlowDatabase:
    """A ping that answers when told to (or fails), counting how many were started."""

    def __init__(self) -> None:
        self.started = 0
        self.answer: asyncio.Future[None] | None = None

    async def ping(self) -> None:
        self.started += 1
        self.answer = asyncio.get_running_loop().create_future()
        await self.answer


async def test_callers_asking_while_a_ping_is_in_flight_share_it() -> None:
    db = SlowDatabase()
    probe = ReadinessProbe(db.ping, timeout=5)
    callers = [asyncio.create_task(probe.ok()) for _ in range(50)]
    await asyncio.sleep(0.01)
    assert db.started == 1 and db.answer is not None
    db.answer.set_result(None)
    assert await asyncio.gather(*callers) == [True] * 50
    later = asyncio.create_task(probe.ok())  # after the answer: a ping of its own
    await asyncio.sleep(0.01)
    assert db.started == 2
    db.answer.set_result(None)
    assert await later is True


async def test_a_ping_past_its_timeout_is_not_ready_and_one_timeout_covers_every_caller() -> None:
    db = SlowDatabase()
    probe = ReadinessProbe(db.ping, timeout=0.05)
    first = asyncio.create_task(probe.ok())
    await asyncio.sleep(0.02)
    second = asyncio.create_task(probe.ok())  # joins the ping in flight
    assert await asyncio.gather(first, second) == [False, False]
    assert db.started == 1


async def test_a_failing_ping_is_not_ready_and_the_next_call_tries_again() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError("database away")

    probe = ReadinessProbe(broken)
    assert await probe.ok() is False
    assert await probe.ok() is False
    assert calls == 2


async def test_a_caller_that_goes_away_leaves_the_ping_to_the_others() -> None:
    db = SlowDatabase()
    probe = ReadinessProbe(db.ping, timeout=5)
    gone = asyncio.create_task(probe.ok())
    staying = asyncio.create_task(probe.ok())
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.sleep(0.01)
    assert db.answer is not None
    db.answer.set_result(None)
    assert await staying is True
    assert db.started == 1
