"""Typed settings from one TOML file plus `CALLHOOK_*` environment overrides. Loud on error.

Every scalar key of a section is overridable as `CALLHOOK_<SECTION>_<KEY>`, e.g.
`CALLHOOK_SERVER_LISTEN=0.0.0.0:8080` or `CALLHOOK_CORRELATION_MERGE_WINDOW=3`. Lists take
JSON (`CALLHOOK_SERVER_TRUSTED_PROXIES='["10.0.0.1"]'`). Unknown keys are errors.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from callhook.events import KEY_TOPIC, TOPICS

ENV_PREFIX = "CALLHOOK_"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_NUMBER_RE = re.compile(r"^[0-9A-Za-z*#+_.-]{1,32}$")


_CALL_EVENT_NAMES = ("dial_in", "dial_out", "answer_incoming", "answer_outgoing", "hangup")
_SECRET_RE = re.compile(r"^whsec_[A-Za-z0-9+/]{32,}={0,2}$")


def _check_target_url(v: str) -> str:
    if not re.match(r"^https?://[^/?#\s$]+", v):
        raise ValueError("expected an http:// or https:// URL with a host")
    return v


def _check_secret(v: str) -> str:
    if not _SECRET_RE.match(v):
        raise ValueError("expected whsec_ followed by base64 of 24 to 64 bytes")
    return v


# Scale-out (PostgreSQL storage, Redis Streams bus: SPEC §5) is not built yet.
_ONE_NODE = 'a hub is one node on database = "sqlite:///PATH" and bus = "memory"'


class ConfigError(Exception):
    """A configuration problem, with a message naming the key and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_hostport(value: str, *, allow_empty: bool) -> str:
    if value == "" and allow_empty:
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8080")
    return value


class ServerConfig(_Strict):
    """[server]: listeners, storage, bus, keys."""

    listen: str = "127.0.0.1:8080"
    wsi_listen: str = "127.0.0.1:8885"
    database: str = "sqlite:///callhook.db"
    bus: str = "memory"
    admin_key: str = "change-me"
    allow_private_targets: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    # "full": fsync every group commit (survives power loss); "normal": survives a process
    # crash (SIGKILL) but may lose the last commits on power loss. See docs/storage.md.
    durability: Literal["full", "normal"] = "full"
    public_url: str = ""  # how phones reach the hub; shown by phone-urls and at start
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "pretty"] = "auto"
    trusted_proxies: list[str] = []
    max_body_bytes: int = Field(default=1_048_576, ge=1024)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return _check_hostport(v, allow_empty=False)

    @field_validator("wsi_listen")
    @classmethod
    def _wsi_listen(cls, v: str) -> str:
        return _check_hostport(v, allow_empty=True)

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        if v.startswith(("postgresql://", "postgres://")):
            # SPEC §5 scale-out. Refused rather than taken for a file name: the hub would
            # otherwise run on a stray SQLite file while the operator believes otherwise.
            raise ValueError(f"PostgreSQL storage is not available in this version; {_ONE_NODE}")
        if not v.startswith("sqlite:///"):
            raise ValueError("expected sqlite:///PATH")
        path = v.removeprefix("sqlite:///")
        if path == ":memory:" or path.startswith("file:"):
            # The writer and the readers are separate connections: an in-memory database
            # would be a different empty one for each, and nothing would survive a restart.
            raise ValueError("expected a file path: the event log must outlive the process")
        return v

    @field_validator("bus")
    @classmethod
    def _bus(cls, v: str) -> str:
        if v.startswith(("redis://", "rediss://")):
            raise ValueError(f"the Redis bus is not available in this version; {_ONE_NODE}")
        if v != "memory":
            raise ValueError('expected "memory"')
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)
        return v


class CorrelationConfig(_Strict):
    """[correlation]: how phone reports are merged into calls."""

    merge_window: float = Field(default=5.0, gt=0, le=300)
    session_timeout: float = Field(default=4 * 3600.0, gt=0)
    ring_timeout: float = Field(default=180.0, gt=0)
    min_ring_seconds: float = Field(default=5.0, ge=0)
    max_sessions_per_tenant: int = Field(default=50_000, ge=10)
    tick_interval: float = Field(default=1.0, gt=0, le=60)


class RetentionConfig(_Strict):
    """[retention]: pruning ages in days (0 keeps forever). CDRs are always kept."""

    events_days: float = Field(default=30.0, ge=0)
    deliveries_days: float = Field(default=14.0, ge=0)


class WsiConfig(_Strict):
    """[wsi]: WebSocket pub/sub limits (docs/wsi.md)."""

    # Unsent bytes allowed per subscriber before it is closed as a slow consumer (1013).
    max_queue_bytes: int = Field(default=1_048_576, ge=16_384)
    # Idle connections are pinged this often, and dropped after two silent intervals.
    ping_interval: float = Field(default=20.0, gt=0, le=3600)


class DeliveryConfig(_Strict):
    """[delivery]: webhook timeouts and retry schedule."""

    connect_timeout: float = Field(default=5.0, gt=0)
    total_timeout: float = Field(default=15.0, gt=0)
    # Svix-like schedule (seconds): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    schedule: list[float] = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    jitter: float = Field(default=0.2, ge=0, le=1)
    disable_after: float = Field(default=5 * 86400.0, gt=0)
    max_in_flight_per_endpoint: int = Field(default=4, ge=1, le=256)
    max_retry_after: float = Field(default=3600.0, gt=0)


class ExtensionConfig(_Strict):
    """[[tenant.extension]]"""

    number: str
    password: str = ""
    display_name: str = ""
    groups: list[str] = []

    @field_validator("number")
    @classmethod
    def _number(cls, v: str) -> str:
        if not _NUMBER_RE.match(v):
            raise ValueError("expected an extension number like 101")
        return v


class QueueConfig(_Strict):
    """[[tenant.queue]]"""

    number: str
    members: list[str] = []
    managers: list[str] = []


class TrunkConfig(_Strict):
    """[[tenant.trunk]]"""

    name: str


class CallEventConfig(_Strict):
    """[[tenant.call_event]]: a VoipNow-style Call Events rule (seed 003)."""

    extension: str
    event: str
    method: Literal["GET", "POST"] = "POST"
    url: str
    enabled: bool = True
    notes: str = ""
    format: Literal["form", "json"] = "form"
    secret: str = ""
    custom_data: dict[str, str] = {}

    @field_validator("event")
    @classmethod
    def _event(cls, v: str) -> str:
        # The seed's names (callhook/deliver/call_events.py RULE_EVENTS) or any event key.
        if v not in _CALL_EVENT_NAMES and v not in KEY_TOPIC:
            raise ValueError(f"expected one of {', '.join(_CALL_EVENT_NAMES)} or an event key")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_target_url(v)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        return _check_secret(v) if v else v


class WebhookConfig(_Strict):
    """[[tenant.webhook]]: a signed JSON webhook (Standard Webhooks)."""

    url: str
    secret: str = ""
    secrets: list[str] = []
    topics: list[str] = []
    keys: list[str] = []
    extensions: list[str] = []
    enabled: bool = True
    schedule: list[float] | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return _check_target_url(v)

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        return _check_secret(v) if v else v

    @field_validator("secrets")
    @classmethod
    def _secrets(cls, v: list[str]) -> list[str]:
        return [_check_secret(s) for s in v]

    @field_validator("topics")
    @classmethod
    def _topics(cls, v: list[str]) -> list[str]:
        for topic in v:
            if topic not in TOPICS:
                raise ValueError(f"unknown topic {topic!r}")
        return v

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        for key in v:
            if key not in KEY_TOPIC:
                raise ValueError(f"unknown event key {key!r}")
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and (not v or any(x < 0 for x in v)):
            raise ValueError("expected a non-empty list of delays in seconds, each >= 0")
        return v


class TenantConfig(_Strict):
    """[[tenant]]"""

    name: str
    password: str = ""
    domain: str = ""
    ingest_token: str = ""
    open_ingest_networks: list[str] = []
    extension: list[ExtensionConfig] = []
    queue: list[QueueConfig] = []
    trunk: list[TrunkConfig] = []
    call_event: list[CallEventConfig] = []
    webhook: list[WebhookConfig] = []

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("expected letters, digits, '.', '_' or '-' (at most 64)")
        return v

    @field_validator("open_ingest_networks")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)
        return v


class Settings(_Strict):
    """The whole configuration file."""

    server: ServerConfig = ServerConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    retention: RetentionConfig = RetentionConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    wsi: WsiConfig = WsiConfig()
    tenant: list[TenantConfig] = []

    @field_validator("tenant")
    @classmethod
    def _unique(cls, v: list[TenantConfig]) -> list[TenantConfig]:
        seen: set[str] = set()
        tokens: set[str] = set()
        for t in v:
            if t.name in seen:
                raise ValueError(f"tenant {t.name!r} declared twice")
            seen.add(t.name)
            if t.ingest_token and t.ingest_token in tokens:
                raise ValueError(f"ingest_token of tenant {t.name!r} is used by another tenant")
            tokens.add(t.ingest_token)
            numbers = [e.number for e in t.extension]
            if len(numbers) != len(set(numbers)):
                raise ValueError(f"tenant {t.name!r} declares an extension twice")
        return v


SECTIONS: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "correlation": CorrelationConfig,
    "retention": RetentionConfig,
    "delivery": DeliveryConfig,
    "wsi": WsiConfig,
}


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == "CALLHOOK_CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            raise ConfigError(f"{name}: unknown setting (expected CALLHOOK_<SECTION>_<KEY>)")
        key = rest[len(section) + 1 :]
        field = SECTIONS[section].model_fields.get(key)
        if field is None:
            raise ConfigError(f"{name}: unknown key {section}.{key}")
        value: Any = raw
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}={raw!r}: not valid JSON ({exc.msg})") from None
        out.setdefault(section, {})[key] = value
    return out


# Keys whose values an error message must not repeat (SPEC §7: secrets are never logged).
_SECRET_KEYS = frozenset({"admin_key", "password", "secret", "secrets", "ingest_token"})
_USERINFO_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")


def _redact_url(value: Any) -> Any:
    """`postgresql://u:pw@host/db` -> `postgresql://u:***@host/db`; other values as they are."""
    return _USERINFO_PASSWORD.sub(r"\1:***@", value) if isinstance(value, str) else value


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        value: Any = data
        path: list[str] = []
        for part in loc:
            path.append(f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part))
            try:
                value = value[part]
            except (KeyError, IndexError, TypeError):
                value = None
        where = "".join(path) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        shown = ""
        if value is not None and not isinstance(value, dict | list):
            secret = any(isinstance(part, str) and part in _SECRET_KEYS for part in loc)
            shown = " = '***'" if secret else f" = {_redact_url(value)!r}"
        lines.append(f"{where}{shown}: {msg}")
    return "; ".join(lines)


def parse(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Settings:
    """Validate a decoded TOML document, with env overrides applied on top."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for section, values in _env_overrides(os.environ if env is None else env).items():
        current = merged.get(section)
        merged[section] = {**(current if isinstance(current, dict) else {}), **values}
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, merged)) from None


def load(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate a config file; a missing file means all defaults."""
    p = Path(path)
    data: dict[str, Any] = {}
    if p.exists():
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML: {exc}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read: {exc}") from None
    return parse(data, env)


SAMPLE = """\
# callhook configuration. Every key can be overridden by CALLHOOK_<SECTION>_<KEY>.
# Reference: README.md "Configuration" and docs/configuration.md.

[server]
listen = "127.0.0.1:8080"           # ingest, REST API, /ws, dashboard, metrics
wsi_listen = "127.0.0.1:8885"       # PortSIP-style WebSocket listener ("" to disable)
database = "sqlite:///callhook.db"  # the event log and everything else (SQLite, WAL)
bus = "memory"                      # in-process; one node (docs/storage.md, "Scale-out")
admin_key = "{admin_key}"
allow_private_targets = false       # webhooks to loopback/private ranges

[[tenant]]
name = "acme"
password = "{tenant_password}"      # WSI tenant auth
domain = "acme.example.com"         # SIP domain: addresses are sip:EXT@domain
ingest_token = "{ingest_token}"
open_ingest_networks = []           # e.g. ["192.168.40.0/24"]: token-less ingest from there

[[tenant.extension]]
number = "101"
password = "{ext_password}"         # WSI extension auth
display_name = "Alice"
groups = ["sales"]

[[tenant.extension]]
number = "102"
password = "{ext_password}"
display_name = "Bob"
groups = ["sales"]
"""


def write_sample(path: str | Path) -> None:
    """Write a sample config with fresh random secrets (used by `serve --init`)."""
    import secrets

    text = SAMPLE.format(
        admin_key=secrets.token_urlsafe(24),
        tenant_password=secrets.token_urlsafe(12),
        ingest_token="gs-" + secrets.token_hex(4),
        ext_password=secrets.token_urlsafe(9),
    )
    Path(path).write_text(text, encoding="utf-8")
