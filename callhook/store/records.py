"""The values that cross the store seam, the same for every backend.

Callers hand these to repository methods and get these back; no connection, cursor, table
name or SQL ever leaves a backend package.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from callhook.events import Event

# What a directory write did, instead of raising: the API maps it to 404/409 (api/common.py).
Outcome = Literal["ok", "exists", "missing", "token-taken", "purging"]


@dataclass(slots=True)
class DeviceSeen:
    """A phone seen on ingest (by MAC)."""

    tenant: str
    mac: str
    vendor: str = ""
    model: str = ""
    firmware: str = ""
    hardware: str = ""
    ip: str = ""
    extension: str = ""
    last_event: str = ""
    seen_at: float = field(default_factory=time.time)
    # JSON object of the other variables that describe the phone (DEVICE_DETAILS), "{}" none
    details: str = "{}"


class Fence(NamedTuple):
    """A write is allowed only while `owner` holds `partition`'s lease at `epoch`.

    Checked first in the writer's transaction (the lease row read `FOR SHARE`, so it
    cannot change hands before COMMIT): a node that lost the lease (paused, cut off, its
    lease expired and taken) writes nothing (`LeaseLost`).
    """

    partition: int
    owner: str
    epoch: int


@dataclass(slots=True)
class Append:
    """Everything one pipeline step writes, committed as one unit."""

    events: list[Event]
    sessions: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    presence: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    devices: list[DeviceSeen] = field(default_factory=list)
    # One entry per request gathered into this batch: its events are events[start:end],
    # its device devices[device] (-1: none). Lets a refused request fail alone.
    parts: list[tuple[int, int, int]] = field(default_factory=list)
    # Leases the writer checks first: one not held any more fails the whole append.
    fences: list[Fence] = field(default_factory=list)

    def add_part(self, events: list[Event], device: DeviceSeen | None) -> int:
        """Add one request's events (and device row) as a part; the index of that part."""
        start = len(self.events)
        self.events.extend(events)
        if device is not None:
            self.devices.append(device)
        last = len(self.devices) - 1 if device is not None else -1
        self.parts.append((start, len(self.events), last))
        return len(self.parts) - 1


@dataclass(frozen=True, slots=True)
class Appended:
    """What one append committed, returned by the writer once COMMIT returned.

    `events` are new values (the appended ones are never changed): each with its `seq`,
    `event_id` and the wire bytes the log stored. `parts` has one entry per request part
    of the `Append` (one for an append without parts): that part's stored events, or None
    when the database refused it (nothing of it was stored). `deliveries` are the outbox
    rows the transaction created.
    """

    events: tuple[Event, ...]
    parts: tuple[tuple[Event, ...] | None, ...]
    deliveries: tuple[NewDelivery, ...] = ()

    def part(self, index: int) -> tuple[Event, ...] | None:
        return self.parts[index] if index < len(self.parts) else None


class StoredEvent(NamedTuple):
    """One event read back from the log: what routing needs, and the wire body to send."""

    seq: int
    key: str
    extensions: tuple[str, ...]
    queue: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class TenantValues:
    """A tenant's settable fields; None leaves a field as it is (on update)."""

    domain: str | None = None
    password_hash: str | None = None
    ingest_token: str | None = None
    open_ingest_networks: list[str] | None = None
    extended_prefix: str | None = None


@dataclass(slots=True)
class ApplyReport:
    """What applying the config file changed (empty on a restart with the same file)."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # why nothing was applied
    # Tenants the file no longer declares, detached at this start / all still kept.
    detached: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.changed or self.removed or self.detached)


@dataclass(frozen=True, slots=True)
class CdrFilter:
    """Filters of GET .../cdrs; `after` is the pagination cursor (a CDR's log seq)."""

    start_from: int | None = None
    start_to: int | None = None
    extension: str | None = None
    status: str | None = None
    after: int = 0
    limit: int = 100


# deliveries ----------------------------------------------------------------------------
@dataclass(slots=True)
class Item:
    """One delivery in memory: one event on its way to one endpoint."""

    delivery_id: str
    endpoint_id: str
    seq: int
    event_id: str
    session: str | None
    attempts: int
    schedule_base: int
    next_at: float
    wire: bytes
    involved: tuple[str, ...]
    context: str = ""


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """A delivery row the outbox asks to create inside the event's own transaction."""

    delivery_id: str
    endpoint_id: str
    tenant: str
    seq: int
    event_id: str
    key: str
    session: str | None
    status: str  # pending, or held when its endpoint is disabled
    context: str
    now: float


@dataclass(slots=True)  # not frozen: built on every attempt, frozen init is slower
class Attempt:
    """One attempt, as the delivery log shows it."""

    delivery_id: str
    n: int
    at: float
    status_code: int | None
    latency_ms: float
    error: str
    response: str


@dataclass(slots=True)  # not frozen: built on every attempt, frozen init is slower
class Update:
    """A delivery's state after an attempt (or a hold)."""

    delivery_id: str
    status: str
    attempts: int
    next_at: float
    last_code: int | None
    last_error: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class EndpointState:
    """An endpoint's health as the delivery service decided it."""

    endpoint_id: str
    health: str
    failing_since: float | None
    disabled_reason: str


class AttemptRow(NamedTuple):
    """One attempt of a tenant's recent deliveries, newest first (dashboard health)."""

    endpoint_id: str
    delivery_id: str
    status: str
    at: float
    status_code: int | None
    latency_ms: float | None
    error: str
