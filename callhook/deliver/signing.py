"""Standard Webhooks signatures (https://www.standardwebhooks.com/), pure.

`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
base64 part of a `whsec_...` secret. Several active secrets (during a rotation) give
several space-separated signatures; a receiver accepts the message if any one matches.
"""

from __future__ import annotations

import base64
import hashlib
import secrets as _secrets
from collections.abc import Sequence

from callhook import fields

PREFIX = fields.SECRET_PREFIX


class BadSecret(ValueError):
    """A secret that is not `whsec_` followed by base64 of 24 to 64 bytes (fields.py)."""


def new_secret() -> str:
    """A fresh `whsec_` secret (24 random bytes, as Svix generates them)."""
    return PREFIX + base64.b64encode(_secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret; BadSecret if it is malformed."""
    try:
        return fields.secret_key(secret)
    except ValueError as exc:
        raise BadSecret(str(exc)) from None


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))


class SigningKey:
    """An HMAC-SHA256 key with its inner and outer hash states computed once (RFC 2104).

    Every attempt is signed, and with OpenSSL 3 a fresh HMAC context costs three times the
    hashing itself; copying two pre-keyed SHA-256 states gives the same MAC for a third.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:  # the SHA-256 block size
            key = hashlib.sha256(key).digest()
        key = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def digest(self, msg: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(msg)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


def sign(key: bytes | SigningKey, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    if isinstance(key, bytes):
        key = SigningKey(key)
    digest = key.digest(b"%s.%d.%s" % (msg_id.encode(), timestamp, body))
    return "v1," + base64.b64encode(digest).decode()


def headers(
    keys: Sequence[bytes | SigningKey], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers; no signature header when there is no key."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if keys:
        out["webhook-signature"] = " ".join(sign(k, msg_id, timestamp, body) for k in keys)
    return out


def mask(secret: str) -> str:
    """What the API shows after creation: enough to tell secrets apart, not to use them."""
    return secret[: len(PREFIX) + 4] + "..." if secret else ""
