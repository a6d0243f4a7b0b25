"""Standard Webhooks signatures (https://www.standardwebhooks.com/), pure.

`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the
base64 part of a `whsec_...` secret. Several active secrets (during a rotation) give
several space-separated signatures; a receiver accepts the message if any one matches.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets as _secrets
from collections.abc import Sequence

PREFIX = "whsec_"


class BadSecret(ValueError):
    """A secret that is not `whsec_` followed by base64 of 24 to 64 bytes."""


def new_secret() -> str:
    """A fresh `whsec_` secret (24 random bytes, as Svix generates them)."""
    return PREFIX + base64.b64encode(_secrets.token_bytes(24)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret; BadSecret if it is malformed."""
    if not secret.startswith(PREFIX):
        raise BadSecret("a secret must start with 'whsec_' followed by base64")
    raw = secret[len(PREFIX) :]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise BadSecret("the part after 'whsec_' is not valid base64") from None
    if not 24 <= len(key) <= 64:
        raise BadSecret("a secret must hold 24 to 64 bytes (base64 after 'whsec_')")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` signature."""
    to_sign = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    digest = hmac.digest(key, to_sign, "sha256")  # one-shot: OpenSSL's, no HMAC object
    return "v1," + base64.b64encode(digest).decode()


def headers(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers; no signature header when there is no key."""
    out = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if keys:
        out["webhook-signature"] = " ".join(sign(k, msg_id, timestamp, body) for k in keys)
    return out


def mask(secret: str) -> str:
    """What the API shows after creation: enough to tell secrets apart, not to use them."""
    return secret[: len(PREFIX) + 4] + "..." if secret else ""
