"""Typed settings from one TOML file plus `CALLHOOK_*` environment overrides. Loud on error.

Every key of a section is overridable as `CALLHOOK_<SECTION>_<KEY>`, e.g.
`CALLHOOK_SERVER_LISTEN=0.0.0.0:8080` or `CALLHOOK_CORRELATION_MERGE_WINDOW=3`, and a
declared tenant's own keys as `CALLHOOK_TENANT_<NAME>_<KEY>` (`CALLHOOK_TENANT_ACME_PASSWORD`).
Lists take JSON (`CALLHOOK_SERVER_TRUSTED_PROXIES='["10.0.0.1"]'`); other values are taken
as they are. Unknown keys are errors. Field rules shared with the admin API: fields.py.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from callhook.config.admin import (
    ADMIN_KEY_MIN,
    DEFAULT_ADMIN_KEY,
    admin_key_problem,
    loopback_only,
)
from callhook.config.env import ENV_PREFIX, TENANT_ENV_KEYS, _apply_env, _describe, redact_url
from callhook.config.models import (
    SECTIONS,
    AuthConfig,
    CallEventConfig,
    ClusterConfig,
    ConfigError,
    ConnectionsConfig,
    CorrelationConfig,
    DeliveryConfig,
    ExtensionConfig,
    QueueConfig,
    RetentionConfig,
    ServerConfig,
    Settings,
    TenantConfig,
    TestingConfig,
    TrunkConfig,
    WebhookConfig,
    WsiConfig,
    default_node_id,
)
from callhook.config.sample import SAMPLE, write_sample

__all__ = [
    "ADMIN_KEY_MIN",
    "DEFAULT_ADMIN_KEY",
    "ENV_PREFIX",
    "SAMPLE",
    "SECTIONS",
    "TENANT_ENV_KEYS",
    "AuthConfig",
    "CallEventConfig",
    "ClusterConfig",
    "ConfigError",
    "ConnectionsConfig",
    "CorrelationConfig",
    "DeliveryConfig",
    "ExtensionConfig",
    "QueueConfig",
    "RetentionConfig",
    "ServerConfig",
    "Settings",
    "TenantConfig",
    "TestingConfig",
    "TrunkConfig",
    "WebhookConfig",
    "WsiConfig",
    "admin_key_problem",
    "default_node_id",
    "load",
    "loopback_only",
    "parse",
    "redact_url",
    "write_sample",
]


def parse(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Validate a decoded TOML document, with env overrides applied on top."""
    merged = copy.deepcopy(dict(data))
    origin = _apply_env(merged, os.environ if env is None else env)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, merged, origin)) from None


def load(
    path: str | Path, env: Mapping[str, str] | None = None, *, missing_ok: bool = False
) -> Settings:
    """Load and validate a config file. A missing one is an error, or with `missing_ok`
    means all defaults (and the environment's overrides)."""
    p = Path(path)
    data: dict[str, Any] = {}
    if p.exists():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read: {exc}") from None
    elif not missing_ok:
        raise ConfigError(f"{p}: no such file")
    return parse(data, env)
