"""Brute-force limits: failed attempts per key (a client address, an account) in a window.

Only failures count. A check in flight (Argon2, a key lookup) holds a reservation until it
ends, and reservations only bound how many checks of one key run at once: at most the
failures still allowed. So 200 parallel guesses get `limit` checks and then refusals, and
200 right logins from one address (wallboards behind a NAT after a restart) all get in,
the ones beyond the bound waiting for a check in flight to end.

Two implementations of one interface, chosen by the composition root: `LocalLimiter`
(one node: counters in this process) and `SharedLimiter` (a cluster: counters in Redis,
atomic Lua scripts, so failures on every node add up to the configured total; the node's
own counters when Redis cannot be reached).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

WAIT = 10.0  # seconds an attempt waits for checks of its key in flight before "busy"


@dataclass(frozen=True, slots=True)
class Attempt:
    """A reservation: one check of `key` in flight (`token` names it where it is held)."""

    key: str
    token: str
    shared: bool = False  # held in Redis (else in this process)


@dataclass(frozen=True, slots=True)
class Refused:
    """No check now: `busy` (checks in flight for too long; not the client's doing), or
    over the limit for `retry_after` more seconds."""

    retry_after: float = 0.0
    busy: bool = False


class Limiter(Protocol):
    """One limit: `limit` failures per `window` seconds per key."""

    limit: int
    window: float

    async def begin(self, key: str, wait: float = WAIT) -> Attempt | Refused:
        """Reserve a check of `key`, waiting (up to `wait` s) while checks in flight use
        the failures still allowed; Refused when over the limit (or still full)."""
        ...

    async def finish(self, attempt: Attempt, *, failed: bool, forget: bool = False) -> None:
        """End a check: a failure counts; `forget`: a success that clears the key's failures."""
        ...

    def blocked(self, key: str) -> bool:
        """Over the limit now (synchronous, for the phone hot path: no I/O)."""
        ...

    def failed(self, key: str) -> None:
        """Count a failure of a check that needed no reservation (synchronous)."""
        ...
