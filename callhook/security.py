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


def hash_api_key(key: str) -> str:
    # API keys are 256-bit random strings, so a plain SHA-256 is the right tool here
    # (Argon2 protects low-entropy passwords, and would make every API call cost ~15 ms).
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


class RateLimiter:
    """Failed-attempt limiter: at most `limit` failures per `window` seconds per key.

    Bounded: keeps at most `max_keys` keys (least recently failed dropped first).
    """

    def __init__(self, limit: int = 10, window: float = 60.0, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._fails: OrderedDict[str, list[float]] = OrderedDict()

    def blocked(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        fails = self._fails.get(key)
        if not fails:
            return False
        fails[:] = [t for t in fails if now - t < self.window]
        return len(fails) >= self.limit

    def failed(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        fails = self._fails.pop(key, [])
        fails.append(now)
        self._fails[key] = fails[-self.limit :]
        while len(self._fails) > self.max_keys:
            self._fails.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._fails.pop(key, None)
