"""The limiter of one node: failures and checks in flight counted in this process."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import OrderedDict, deque

from callhook.limits import WAIT, Attempt, Refused


class LocalLimiter:
    """At most `limit` failures per `window` seconds per key (a sliding window), and at
    most as many checks in flight as failures are still allowed.

    Bounded: keeps at most `max_keys` keys (least recently failed dropped first), each
    with its last `limit` failures, oldest first: a check costs the same whatever the
    limit (a limit of a million is not a million-long scan).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()
        self._held: dict[str, set[str]] = {}  # key -> tokens of checks in flight
        self._ended: dict[str, asyncio.Event] = {}  # key -> set when one of its checks ends
        self._waiting: dict[str, int] = {}  # key -> attempts waiting on it (to drop the event)
        self._tokens = itertools.count(1)

    # the rule, with an explicit clock (unit tests) ---------------------------------------
    def failures(self, key: str, now: float) -> int:
        fails = self._fails.get(key)
        if not fails:
            return 0
        while fails and now - fails[0] >= self.window:  # oldest first: the expired ones
            fails.popleft()
        return len(fails)

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` is under the limit again (0 when it is now)."""
        now = time.monotonic() if now is None else now
        if self.failures(key, now) < self.limit:
            return 0.0
        return self.window - (now - self._fails[key][-self.limit])

    def try_reserve(self, key: str, now: float | None = None) -> Attempt | Refused | None:
        """An attempt, Refused (over the limit), or None: full with checks in flight."""
        now = time.monotonic() if now is None else now
        failed = self.failures(key, now)
        if failed >= self.limit:
            return Refused(self.retry_after(key, now))
        held = self._held.setdefault(key, set())
        if failed + len(held) >= self.limit:
            return None
        token = str(next(self._tokens))
        held.add(token)
        return Attempt(key, token)

    def end(
        self, attempt: Attempt, *, failed: bool, forget: bool = False, now: float | None = None
    ) -> None:
        held = self._held.get(attempt.key)
        if held is not None:
            held.discard(attempt.token)
            if not held:
                del self._held[attempt.key]
        if failed:
            self.failed(attempt.key, now)
        elif forget:
            self.forget(attempt.key)
        self.wake(attempt.key)

    def forget(self, key: str) -> None:
        """A success that clears the key's failures (an account, after its right password)."""
        self._fails.pop(key, None)

    def wake(self, key: str) -> None:
        ended = self._ended.pop(key, None)
        if ended is not None:
            ended.set()

    async def ended(self, key: str, within: float) -> None:
        """Until a check of `key` ends here (or `within` seconds)."""
        ended = self._ended.setdefault(key, asyncio.Event())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            await asyncio.wait_for(ended.wait(), within)
        except TimeoutError:
            pass
        finally:
            left = self._waiting.pop(key) - 1
            if left:
                self._waiting[key] = left
            elif self._ended.get(key) is ended:  # nobody waits: bounded by waiters, not keys
                del self._ended[key]

    # Limiter ---------------------------------------------------------------------------
    async def begin(self, key: str, wait: float = WAIT) -> Attempt | Refused:
        deadline = time.monotonic() + wait
        while True:
            got = self.try_reserve(key)
            if got is not None:
                return got
            left = deadline - time.monotonic()
            if left <= 0:
                return Refused(busy=True)
            await self.ended(key, min(left, 1.0))

    async def finish(self, attempt: Attempt, *, failed: bool, forget: bool = False) -> None:
        self.end(attempt, failed=failed, forget=forget)

    def blocked(self, key: str) -> bool:
        return self.failures(key, time.monotonic()) >= self.limit

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        fails = self._fails.pop(key, None)
        if fails is None:
            fails = deque(maxlen=self.limit)
        fails.append(now)  # the oldest beyond `limit` drops out
        self._fails[key] = fails
        while len(self._fails) > self.max_keys:
            self._fails.popitem(last=False)
