"""Password hashing (Argon2), API key hashing, constant-time checks, auth rate limiting."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# OWASP's minimum Argon2id profile (m=19 MiB, t=2, p=1): ~15 ms a hash on our machines,
# so applying a config with hundreds of extensions at start stays quick.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


def hash_password(password: str) -> str:
    return _hasher.hash(password) if password else ""


def verify_password(stored: str, password: str) -> bool:
    if not stored or not password:
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return True


def new_api_key() -> str:
    """A tenant API key, shown once: `chk_<random>`."""
    return f"chk_{secrets.token_urlsafe(32)}"


def new_ingest_token(prefix: str) -> str:
    """A tenant's ingest token: `prefix` and 128 random bits (phones send it in every URL,
    so it is all that stands between the internet and a tenant's event log)."""
    return prefix + secrets.token_urlsafe(16)


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random strings, so a plain SHA-256 is the right tool here
    # (Argon2 protects low-entropy passwords, and would make every API call cost ~15 ms).
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


class RateLimiter:
    """Attempt limiter: at most `limit` counted attempts per `window` seconds per key.

    An attempt is counted *before* its check (`reserve`), not after it failed: checks are
    slow (Argon2, a database read), and 200 attempts started together would otherwise all
    pass a "fewer than 10 failures so far?" test before the first of them failed. An
    attempt that succeeds is uncounted (`release`); `succeeded` forgets a key entirely.
    Bounded: keeps at most `max_keys` keys (least recently used dropped first).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._fails: OrderedDict[str, list[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> list[float]:
        fails = self._fails.get(key)
        if not fails:
            return []
        fails[:] = [t for t in fails if now - t < self.window]
        return fails

    def blocked(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return len(self._recent(key, now)) >= self.limit

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` is under the limit again (0 when it is now)."""
        now = time.monotonic() if now is None else now
        fails = self._recent(key, now)
        if len(fails) < self.limit:
            return 0.0
        return self.window - (now - fails[-self.limit])

    def reserve(self, key: str, now: float | None = None) -> float | None:
        """Count one attempt now; its token, or None when `key` is over the limit."""
        now = time.monotonic() if now is None else now
        if len(self._recent(key, now)) >= self.limit:
            return None
        self.failed(key, now)
        return now

    def release(self, key: str, token: float) -> None:
        """Uncount the attempt `reserve` returned `token` for (it succeeded)."""
        fails = self._fails.get(key)
        if fails and token in fails:
            fails.remove(token)

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        fails = self._fails.pop(key, [])
        fails.append(now)
        self._fails[key] = fails[-self.limit :]
        while len(self._fails) > self.max_keys:
            self._fails.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._fails.pop(key, None)
