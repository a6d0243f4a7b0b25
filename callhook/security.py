"""Password hashing (Argon2), API key hashing, constant-time checks (limits: callhook/limits)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

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
