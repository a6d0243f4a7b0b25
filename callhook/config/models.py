"""The configuration's sections as typed, frozen models; field rules come from fields.py."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from callhook import fields
from callhook.ingest.model import PHONE_EVENTS


def _unless_empty(check: Callable[[str], str]) -> AfterValidator:
    """`""` means "not set" in the file (the hub's default); anything else must pass."""
    return AfterValidator(lambda v: check(v) if v else v)


# The admin API's rules (callhook/fields.py): the file accepts what the API accepts.
Name = Annotated[str, AfterValidator(fields.check_name)]
Number = Annotated[str, AfterValidator(fields.check_number)]
Numbers = Annotated[list[Number], Field(max_length=fields.MEMBERS_MAX)]
Network = Annotated[str, AfterValidator(fields.check_network)]
Schedule = Annotated[list[float], AfterValidator(fields.check_schedule)]
OptionalToken = Annotated[str, _unless_empty(fields.check_token)]
OptionalDomain = Annotated[str, _unless_empty(fields.check_domain)]
OptionalPassword = Annotated[
    str, Field(max_length=fields.PASSWORD_MAX), AfterValidator(fields.check_text)
]
DisplayName = Annotated[
    str, Field(max_length=fields.DISPLAY_NAME_MAX), AfterValidator(fields.check_text)
]


Secret = Annotated[str, AfterValidator(fields.check_secret)]
OptionalSecret = Annotated[str, _unless_empty(fields.check_secret)]
TargetUrl = Annotated[str, AfterValidator(fields.check_target_url)]
Topic = Annotated[str, AfterValidator(fields.check_topic)]
EventKey = Annotated[str, AfterValidator(fields.check_key)]
CallEventName = Annotated[str, AfterValidator(fields.check_call_event)]


# Several nodes share one PostgreSQL database and one Redis (docs/scaling.md).
_SHARED_DB = 'nodes share one database: set server.database = "postgresql://..." too'


def default_node_id(server: ServerConfig) -> str:
    """`[server] node_id` left empty: this machine's hostname and the port of `listen`."""
    return f"{socket.gethostname()}:{server.listen.rsplit(':', 1)[1]}"


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
    # Checked against `listen` even when left at its default.
    wsi_listen: str = Field(default="127.0.0.1:8885", validate_default=True)
    database: str = "sqlite:///callhook.db"
    bus: str = "memory"
    # This node's name in the cluster ("" = hostname:port of `listen`).
    node_id: str = Field(default="", max_length=128)
    # Node processes on this machine (`serve --workers N`); >1 needs PostgreSQL and Redis.
    workers: int = Field(default=1, ge=1, le=64)
    admin_key: str = "change-me"
    allow_private_targets: bool = False
    tls_cert: str = ""
    tls_key: str = Field(default="", validate_default=True)  # checked against tls_cert
    # "full": fsync every group commit (survives power loss); "normal": survives a process
    # crash (SIGKILL) but may lose the last commits on power loss. See docs/storage.md.
    durability: Literal["full", "normal"] = "full"
    public_url: str = ""  # how phones reach the hub; shown by phone-urls and at start
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "pretty"] = "auto"
    trusted_proxies: list[str] = []
    # The header those proxies write the client's address in (only that one is read).
    trusted_proxy_header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Reader connections (threads) of the database; the writer has one more of its own.
    database_pool: int = Field(default=4, ge=1, le=64)
    # PostgreSQL: seconds of silence (a cut network sends no reset) after which a connection
    # is given up, on both ends, and a new one is tried for; also the connect timeout.
    database_timeout: int = Field(default=5, ge=2, le=3600)

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        return _check_hostport(v, allow_empty=False)

    @field_validator("wsi_listen")
    @classmethod
    def _wsi_listen(cls, v: str, info: ValidationInfo) -> str:
        _check_hostport(v, allow_empty=True)
        listen = info.data.get("listen")  # absent if it was refused itself
        if v and listen and _same_socket(v, listen):
            raise ValueError(f"the same port as server.listen = {listen!r}; each needs its own")
        return v

    @field_validator("tls_key")
    @classmethod
    def _tls_key(cls, v: str, info: ValidationInfo) -> str:
        # One without the other once ran the WSI listener quietly without TLS.
        cert = info.data.get("tls_cert", "")
        if v and not cert:
            raise ValueError("needs server.tls_cert too (TLS takes both, or neither)")
        if cert and not v:
            raise ValueError(f"required with server.tls_cert = {cert!r} (TLS takes both)")
        return v

    @field_validator("database")
    @classmethod
    def _database(cls, v: str) -> str:
        if v.startswith(("postgresql://", "postgres://")):
            return v  # reached (and migrated) at start: `callhook db upgrade` checks it
        if not v.startswith("sqlite:///"):
            # Never taken for a file name: the hub would run on a stray SQLite file.
            raise ValueError("expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST/DB")
        path = v.removeprefix("sqlite:///")
        if path == ":memory:" or path.startswith("file:"):
            # The writer and the readers are separate connections: an in-memory database
            # would be a different empty one for each, and nothing would survive a restart.
            raise ValueError("expected a file path: the event log must outlive the process")
        return v

    @field_validator("bus")
    @classmethod
    def _bus(cls, v: str, info: ValidationInfo) -> str:
        if v.startswith(("redis://", "rediss://")):
            database = info.data.get("database")  # absent if it was refused itself
            if database and not database.startswith(("postgresql://", "postgres://")):
                raise ValueError(f"the Redis bus joins nodes; {_SHARED_DB}")
            return v
        if v != "memory":
            raise ValueError('expected "memory" or redis://HOST:PORT/DB')
        return v

    @field_validator("workers")
    @classmethod
    def _workers(cls, v: int, info: ValidationInfo) -> int:
        if v > 1 and not str(info.data.get("bus", "")).startswith(("redis://", "rediss://")):
            raise ValueError(
                "several worker processes are several nodes: set server.database ="
                ' "postgresql://..." and server.bus = "redis://..." (embedded SQLite is one'
                " process)"
            )
        return v

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: list[str]) -> list[str]:
        for net in v:
            ipaddress.ip_network(net, strict=False)
        return v


_ANY_HOST = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


def _same_socket(a: str, b: str) -> bool:
    """Whether two HOST:PORT listeners would bind the same port (port 0: any free one)."""
    host_a, _, port_a = a.rpartition(":")
    host_b, _, port_b = b.rpartition(":")
    if port_a != port_b or int(port_a) == 0:
        return False
    return host_a == host_b or host_a in _ANY_HOST or host_b in _ANY_HOST


class CorrelationConfig(_Strict):
    """[correlation]: how phone reports are merged into calls."""

    merge_window: float = Field(default=5.0, gt=0, le=300)
    session_timeout: float = Field(default=4 * 3600.0, gt=0)
    ring_timeout: float = Field(default=180.0, gt=0)
    min_ring_seconds: float = Field(default=5.0, ge=0)
    max_sessions_per_tenant: int = Field(default=50_000, ge=10)
    tick_interval: float = Field(default=1.0, gt=0, le=60)


class ClusterConfig(_Strict):
    """[cluster]: partition leases of nodes sharing one PostgreSQL database (a Redis bus)."""

    # Seconds a lease lasts unless renewed: a dead node's partitions are taken after this
    # long (plus one renewal interval at most); a node that cannot renew for this long
    # stops processing them by itself.
    lease_ttl: float = Field(default=5.0, ge=1, le=300)
    # Seconds between renewals (and heartbeats); at most half of lease_ttl.
    lease_renew: float = Field(default=1.0, gt=0, le=150)

    @field_validator("lease_renew")
    @classmethod
    def _renew(cls, v: float, info: ValidationInfo) -> float:
        ttl = info.data.get("lease_ttl")  # absent if it was refused itself
        if ttl is not None and v * 2 > ttl:
            raise ValueError(f"at most half of cluster.lease_ttl = {ttl} (two renewals a lease)")
        return v


class TestingConfig(_Strict):
    """[testing]: fault injection for the test suite; empty (off) in production."""

    # A phone event (e.g. "hold_call") on which the correlator raises, to test that such a
    # report is stored raw and counted, not lost (docs/configuration.md, [testing]).
    correlator_fault: str = ""

    @field_validator("correlator_fault")
    @classmethod
    def _fault(cls, v: str) -> str:
        if v and v not in PHONE_EVENTS:
            raise ValueError('expected "" (off) or a phone event such as hold_call')
        return v


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


class ConnectionsConfig(_Strict):
    """[connections]: what one client may hold of the listeners (docs/operations.md)."""

    # Request line + headers of one request (main port, `/ws`); over it: 431 and close.
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1_048_576)
    # Seconds from a connection's (or a request's) first byte to the end of its headers.
    header_timeout: float = Field(default=10.0, gt=0, le=3600)
    # Seconds for a request's body to arrive once its headers have.
    body_timeout: float = Field(default=10.0, gt=0, le=3600)
    # Seconds a client may leave its answers unread (the hub's send buffer full, nothing
    # taken from it) before it is disconnected: a client that never reads holds no socket.
    send_timeout: float = Field(default=60.0, gt=0, le=3600)
    # Open connections, both listeners together; new ones get 503 and are closed. Also kept
    # below the process's file limit.
    max_open: int = Field(default=20_000, ge=16)
    # Open connections from one source address.
    max_per_source: int = Field(default=1_000, ge=1)


class AuthConfig(_Strict):
    """[auth]: brute-force limits on WSI logins, API keys and phone tokens (docs/operations.md).

    An attempt counts from the moment it starts (before its check), so parallel guesses
    cannot overrun a limit; a successful one is uncounted.
    """

    window: float = Field(default=60.0, gt=0, le=86400)  # seconds attempts are counted over
    # WSI: per account (tenant or extension, however its domain is spelt), from any address.
    wsi_max_failures_per_account: int = Field(default=10, ge=1)
    # WSI: per client address over all accounts (an office behind NAT shares one).
    wsi_max_failures_per_source: int = Field(default=30, ge=1)
    # REST API and dashboard: unknown or missing keys per client address.
    api_max_failures_per_source: int = Field(default=10, ge=1)
    # Phone requests with an unknown ingest token per client address; past it every
    # request with a token from there is answered 429 (a right one too: no oracle).
    ingest_max_unknown_tokens_per_source: int = Field(default=30, ge=1)
    # Argon2 checks run at once (each about 15 ms of one core and 19 MiB), and logins that
    # may wait for one before further ones are answered "busy".
    hash_concurrency: int = Field(default=1, ge=1, le=64)
    hash_queue: int = Field(default=256, ge=0)


class DeliveryConfig(_Strict):
    """[delivery]: webhook timeouts and retry schedule."""

    connect_timeout: float = Field(default=5.0, gt=0)
    total_timeout: float = Field(default=15.0, gt=0)
    # Svix-like schedule (seconds): immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
    schedule: Schedule = [0, 5, 300, 1800, 7200, 18000, 36000, 36000]
    jitter: float = Field(default=0.2, ge=0, le=1)
    disable_after: float = Field(default=5 * 86400.0, gt=0)
    max_in_flight_per_endpoint: int = Field(default=4, ge=1, le=256)
    max_retry_after: float = Field(default=3600.0, gt=0)
    # A cluster (a Redis bus): seconds a node's claim on a delivery lasts unless renewed
    # (every claim_ttl / 3); a dead node's deliveries are sent by another node after this.
    claim_ttl: float = Field(default=60.0, ge=1, le=3600)
    # A cluster: seconds between a node's looks for due retries and expired claims (new
    # deliveries and finished ones wake the nodes at once).
    claim_poll: float = Field(default=1.0, gt=0, le=60)

    @field_validator("claim_ttl")
    @classmethod
    def _claim_ttl(cls, v: float, info: ValidationInfo) -> float:
        total = info.data.get("total_timeout")  # absent if it was refused itself
        if total is not None and v <= total:
            raise ValueError(
                f"must be longer than delivery.total_timeout = {total} (a claim outlives"
                " the attempt it covers)"
            )
        return v


class ExtensionConfig(_Strict):
    """[[tenant.extension]]"""

    number: Number
    password: OptionalPassword = ""
    display_name: DisplayName = ""
    groups: Annotated[list[Name], Field(max_length=fields.GROUPS_MAX)] = []


class QueueConfig(_Strict):
    """[[tenant.queue]]"""

    number: Number
    members: Numbers = []
    managers: Numbers = []


class TrunkConfig(_Strict):
    """[[tenant.trunk]]"""

    name: Name


class CallEventConfig(_Strict):
    """[[tenant.call_event]]: a VoipNow-style Call Events rule (docs/webhooks.md)."""

    extension: Number
    event: CallEventName
    method: Annotated[Literal["GET", "POST"], BeforeValidator(fields.upper_method)] = "POST"
    url: TargetUrl
    enabled: bool = True
    notes: str = ""
    format: Literal["form", "json"] = "form"
    secret: OptionalSecret = ""
    custom_data: dict[str, str] = {}


class WebhookConfig(_Strict):
    """[[tenant.webhook]]: a signed JSON webhook (Standard Webhooks)."""

    url: TargetUrl
    secret: OptionalSecret = ""
    secrets: list[Secret] = []
    topics: list[Topic] = []
    keys: list[EventKey] = []
    extensions: Numbers = []
    enabled: bool = True
    schedule: Schedule | None = None


class TenantConfig(_Strict):
    """[[tenant]]"""

    name: Name
    password: OptionalPassword = ""
    domain: OptionalDomain = ""
    ingest_token: OptionalToken = ""
    open_ingest_networks: Annotated[list[Network], Field(max_length=fields.NETWORKS_MAX)] = []
    extended_prefix: Annotated[str, AfterValidator(fields.check_extended_prefix)] = ""
    extension: list[ExtensionConfig] = []
    queue: list[QueueConfig] = []
    trunk: list[TrunkConfig] = []
    call_event: list[CallEventConfig] = []
    webhook: list[WebhookConfig] = []

    @field_validator("extension", "queue")
    @classmethod
    def _unique_numbers(cls, v: list[ExtensionConfig] | list[QueueConfig]) -> Any:
        _refuse_twice([x.number for x in v], "number")
        return v

    @field_validator("queue")
    @classmethod
    def _queue_people_exist(cls, v: list[QueueConfig], info: ValidationInfo) -> list[QueueConfig]:
        # Members and managers must be extensions of the tenant, as group members are.
        declared = {e.number for e in info.data.get("extension", [])}
        for q in v:
            for field in ("members", "managers"):
                unknown = sorted(set(getattr(q, field)) - declared)
                if unknown:
                    raise ValueError(
                        f"queue {q.number!r} {field}: no extension {', '.join(unknown[:5])}"
                        " declared in this tenant"
                    )
        return v

    @field_validator("trunk")
    @classmethod
    def _unique_names(cls, v: list[TrunkConfig]) -> list[TrunkConfig]:
        _refuse_twice([x.name for x in v], "name")
        return v


def _refuse_twice(values: list[str], key: str) -> None:
    """The database keeps one of each: a second entry would silently replace the first."""
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{key} {value!r} declared twice")
        seen.add(value)


class Settings(_Strict):
    """The whole configuration file."""

    server: ServerConfig = ServerConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    retention: RetentionConfig = RetentionConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    wsi: WsiConfig = WsiConfig()
    connections: ConnectionsConfig = ConnectionsConfig()
    auth: AuthConfig = AuthConfig()
    cluster: ClusterConfig = ClusterConfig()
    testing: TestingConfig = TestingConfig()
    tenant: list[TenantConfig] = []

    @field_validator("cluster")
    @classmethod
    def _lease_outlasts_a_dead_connection(
        cls, v: ClusterConfig, info: ValidationInfo
    ) -> ClusterConfig:
        server = info.data.get("server")  # absent if it was refused itself
        if not isinstance(server, ServerConfig) or not server.bus.startswith(
            ("redis://", "rediss://")
        ):
            return v
        if server.database_timeout > v.lease_ttl:
            raise ValueError(
                f"lease_ttl = {v.lease_ttl:g} is shorter than server.database_timeout ="
                f" {server.database_timeout}: a node cut off in the middle of a write keeps its"
                " partitions locked until PostgreSQL drops its connection, so a takeover would"
                " wait database_timeout, not lease_ttl; make lease_ttl at least database_timeout"
            )
        return v

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
        return v


SECTIONS: dict[str, type[BaseModel]] = {
    "server": ServerConfig,
    "correlation": CorrelationConfig,
    "retention": RetentionConfig,
    "delivery": DeliveryConfig,
    "wsi": WsiConfig,
    "connections": ConnectionsConfig,
    "auth": AuthConfig,
    "cluster": ClusterConfig,
    "testing": TestingConfig,
}
