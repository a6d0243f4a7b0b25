"""The admin key rule, one place for `serve` and `check-config`."""

from __future__ import annotations

import ipaddress

from callhook.config.models import ServerConfig

ADMIN_KEY_MIN = 16  # characters; `serve --init` writes 32 random ones
DEFAULT_ADMIN_KEY = ServerConfig.model_fields["admin_key"].default
_ADMIN_KEY_HINT = (
    "set server.admin_key (or CALLHOOK_SERVER_ADMIN_KEY) to a random secret of at least"
    f" {ADMIN_KEY_MIN} characters, e.g. from `python3 -c 'import secrets;"
    " print(secrets.token_urlsafe(24))'`, or let `callhook serve --init` write a config"
)


def loopback_only(listen: str) -> bool:
    """Whether a HOST:PORT listener takes connections from this machine only."""
    host = listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_key_problem(server: ServerConfig) -> str | None:
    """Why the hub must not serve with this admin key, or None (`serve` and `check-config`).

    The key opens every tenant. Empty or the default `change-me`: refused everywhere (a
    placeholder left in a file is one everybody knows). Shorter than ADMIN_KEY_MIN:
    refused when `listen` takes connections from other machines; on loopback only this
    machine's users can try it, so a short key is allowed there (tests, a first look).
    """
    key = server.admin_key
    if not key.strip():
        problem = "is empty"
    elif key == DEFAULT_ADMIN_KEY:
        problem = f"is the default {DEFAULT_ADMIN_KEY!r}"
    elif len(key) < ADMIN_KEY_MIN and not loopback_only(server.listen):
        problem = (
            f"is shorter than {ADMIN_KEY_MIN} characters and server.listen ="
            f" {server.listen!r} takes connections from other machines"
        )
    else:
        return None
    return f"server.admin_key {problem}: {_ADMIN_KEY_HINT}"
