"""The limiter of a cluster: failures and checks in flight counted in Redis, atomically.

Each key has two sorted sets: its failures (scored by the time they happened, Redis's
clock) and its checks in flight (scored by when their reservation lapses, for a node that
died mid-check). A Lua script reserves a check (purge what aged out, compare with the
limit, add) and another ends one, so two nodes can never both take the last failure
allowed, and failures on every node add up to the configured total.

Phone requests cannot wait for Redis (that path does no I/O before its answer), so the
ingest limit is checked against what this node knows: its own failures, and "blocked"
notices that the node counting the failure which reached the limit publishes to every
node (Redis pub/sub, milliseconds); the failures themselves are counted in Redis.

Redis unreachable: the node counts on its own (it always keeps its own counts too), as a
single node does, and tries Redis again every `RETRY` seconds. A limit therefore never
vanishes and no check waits on a dead Redis; for that time the cluster allows up to
`limit` failures per node instead of per cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from callhook.limits import WAIT, Attempt, Refused
from callhook.limits.local import LocalLimiter

log = logging.getLogger("callhook.limits")

PREFIX = "callhook:limit:"
NOTICES = "callhook:limits"  # pub/sub: {"k": key, "ms": blocked for}
RETRY = 1.0  # seconds between attempts to reach Redis again
POLL = 0.05  # seconds between looks while checks held on other nodes fill a key
HOLD_MS = 30_000  # a reservation lapses after this (its node died mid-check): longer
# than any check takes (up to WAIT for a place, then the Argon2 queue: seconds)
MAX_PENDING = 10_000  # ingest failures waiting to be counted in Redis
ERRORS = (RedisError, OSError, asyncio.TimeoutError)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# KEYS: failures, held. ARGV: limit, window ms, hold ms, token.
# -> {0, ms until under the limit} | {1, 0}: full, wait | {2, 0}: reserved
RESERVE = (
    _NOW
    + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local failed = redis.call('ZCARD', KEYS[1])
if failed >= limit then
  local nth = redis.call('ZRANGE', KEYS[1], failed - limit, failed - limit, 'WITHSCORES')
  return {0, tonumber(nth[2]) + window - now}
end
if failed + redis.call('ZCARD', KEYS[2]) >= limit then
  return {1, 0}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
return {2, 0}
"""
)
# KEYS: failures, held. ARGV: limit, window ms, token, failed (0/1), forget (0/1).
# -> {failures now, ms until under the limit (0: it is)}
FINISH = (
    _NOW
    + """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[3])
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
  redis.call('PEXPIRE', KEYS[1], window)
elseif ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local failed = redis.call('ZCARD', KEYS[1])
if failed < limit then
  return {failed, 0}
end
local nth = redis.call('ZRANGE', KEYS[1], failed - limit, failed - limit, 'WITHSCORES')
return {failed, tonumber(nth[2]) + window - now}
"""
)


def _keys(name: str) -> list[str]:
    tagged = "{" + name.replace("{", "(").replace("}", ")") + "}"  # one Redis Cluster slot
    return [PREFIX + tagged + ":f", PREFIX + tagged + ":r"]


class SharedLimits:
    """One node's connection to the cluster's counters (shared by its limiters)."""

    def __init__(self, url: str, node: str) -> None:
        self.url = url
        self._redis: Redis | None = None
        self._prefix = f"{node}:{secrets.token_hex(4)}:"
        self._count = 0
        self._down_until = 0.0
        self.reachable = True
        self._blocked: dict[str, float] = {}  # key -> monotonic time it is blocked until
        self._pending: deque[tuple[str, int, float]] = deque(maxlen=MAX_PENDING)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._redis = Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._reserve = self._redis.register_script(RESERVE)
        self._finish = self._redis.register_script(FINISH)
        self._tasks = [
            asyncio.create_task(self._count_failures(), name="limits-count"),
            asyncio.create_task(self._read_notices(), name="limits-notices"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self._redis is not None:
            await self._redis.aclose()

    # availability ----------------------------------------------------------------------
    def usable(self) -> bool:
        return self._redis is not None and time.monotonic() >= self._down_until

    def lost(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + RETRY
        if self.reachable:
            self.reachable = False
            log.warning(
                "rate limits: Redis unreachable (%s); this node counts failures on its own"
                " until it is back",
                exc,
            )

    def _back(self) -> None:
        if not self.reachable:
            self.reachable = True
            log.info("rate limits: Redis reachable again; limits are per cluster again")

    def token(self) -> str:
        self._count += 1
        return self._prefix + str(self._count)

    # scripts ---------------------------------------------------------------------------
    async def reserve(self, name: str, limit: int, window: float) -> tuple[int, float, str]:
        token = self.token()
        args: list[str | int] = [limit, int(window * 1000), HOLD_MS, token]
        verdict, ms = await self._reserve(keys=_keys(name), args=args)
        self._back()
        return int(verdict), int(ms) / 1000, token

    async def finish(
        self, name: str, limit: int, window: float, token: str, failed: bool, forget: bool
    ) -> tuple[int, float]:
        args: list[str | int] = [limit, int(window * 1000), token, int(failed), int(forget)]
        count, ms = await self._finish(keys=_keys(name), args=args)
        self._back()
        return int(count), int(ms) / 1000

    # the phone path: counted in the background, "blocked" broadcast ---------------------
    def blocked(self, name: str) -> bool:
        until = self._blocked.get(name)
        if until is None:
            return False
        if until > time.monotonic():
            return True
        del self._blocked[name]
        return False

    def report(self, name: str, limit: int, window: float) -> None:
        self._pending.append((name, limit, window))
        self._wake.set()

    def _block(self, name: str, seconds: float) -> None:
        if len(self._blocked) > 100_000:
            now = time.monotonic()
            self._blocked = {k: t for k, t in self._blocked.items() if t > now}
        self._blocked[name] = max(self._blocked.get(name, 0.0), time.monotonic() + seconds)

    async def _count_failures(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
            if not self.usable():
                self._pending.clear()  # the node's own counts stand in meanwhile
                await asyncio.sleep(RETRY)
                continue
            name, limit, window = self._pending.popleft()
            try:
                count, blocked_for = await self.finish(
                    name, limit, window, self.token(), True, False
                )
                if count >= limit and blocked_for > 0:
                    self._block(name, blocked_for)
                    assert self._redis is not None
                    notice = json.dumps({"k": name, "ms": int(blocked_for * 1000)})
                    await self._redis.publish(NOTICES, notice)
            except asyncio.CancelledError:
                raise
            except ERRORS as exc:
                self.lost(exc)

    async def _read_notices(self) -> None:
        assert self._redis is not None
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTICES)
                while True:
                    msg: Any = await pubsub.get_message(timeout=1.0)
                    if msg is not None and msg.get("type") == "message":
                        notice = json.loads(msg["data"])
                        self._block(str(notice["k"]), int(notice["ms"]) / 1000)
            except asyncio.CancelledError:
                raise
            except (*ERRORS, ValueError, KeyError, TypeError):
                await asyncio.sleep(RETRY)
            finally:
                await pubsub.aclose()


class SharedLimiter:
    """One limit counted in Redis for the whole cluster; `local` keeps this node's own
    counts and stands in while Redis is away."""

    def __init__(self, kind: str, limit: int, window: float, shared: SharedLimits) -> None:
        self.kind = kind
        self.limit = limit
        self.window = window
        self.shared = shared
        self.local = LocalLimiter(limit, window)

    def _name(self, key: str) -> str:
        return f"{self.kind}:{key}"

    async def begin(self, key: str, wait: float = WAIT) -> Attempt | Refused:
        deadline = time.monotonic() + wait
        while True:
            if self.shared.usable():
                try:
                    verdict, retry, token = await self.shared.reserve(
                        self._name(key), self.limit, self.window
                    )
                except ERRORS as exc:
                    self.shared.lost(exc)
                    continue
                if verdict == 0:
                    return Refused(retry)
                if verdict == 2:
                    return Attempt(key, token, shared=True)
            else:
                got = self.local.try_reserve(key)
                if got is not None:
                    return got
            left = deadline - time.monotonic()
            if left <= 0:
                return Refused(busy=True)
            await self.local.ended(key, min(left, POLL))  # one of ours, or a look again

    async def finish(self, attempt: Attempt, *, failed: bool, forget: bool = False) -> None:
        if not attempt.shared:
            self.local.end(attempt, failed=failed, forget=forget)
            return
        key = attempt.key
        if failed:
            self.local.failed(key)  # this node's own count, for when Redis is away
        elif forget:
            self.local.forget(key)
        self.local.wake(key)
        try:
            name = self._name(key)
            await self.shared.finish(name, self.limit, self.window, attempt.token, failed, forget)
        except ERRORS as exc:  # the reservation lapses by itself
            self.shared.lost(exc)

    def blocked(self, key: str) -> bool:
        return self.local.blocked(key) or self.shared.blocked(self._name(key))

    def failed(self, key: str) -> None:
        self.local.failed(key)
        self.shared.report(self._name(key), self.limit, self.window)
