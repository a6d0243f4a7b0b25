"""Endpoints (JSON webhooks and Call Events rules) and which of them an event goes to.

An `Index` is an immutable snapshot, swapped as a whole when endpoints change, so the
writer thread (in-transaction outbox hook) can read it without locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from callhook.deliver import call_events, signing
from callhook.events import Event

Kind = Literal["webhook", "call_event"]
KINDS: tuple[Kind, ...] = ("webhook", "call_event")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where deliveries go: a tenant's JSON webhook or an extension's Call Events rule."""

    endpoint_id: str
    tenant: str
    kind: Kind
    url: str
    secrets: tuple[str, ...] = ()
    enabled: bool = True  # the admin's switch: a disabled endpoint gets nothing at all
    disabled_reason: str = ""  # set by the hub ("gone", "failing"): deliveries are held
    health: str = "ok"  # "ok" | "failing"
    failing_since: float | None = None
    source: str = "api"
    created_at: float = 0.0
    updated_at: float = 0.0
    # JSON webhook filters; empty means all
    topics: frozenset[str] = frozenset()
    keys: frozenset[str] = frozenset()
    extensions: frozenset[str] = frozenset()
    schedule: tuple[float, ...] | None = None
    description: str = ""
    # Call Events rule (VoipNow style)
    extension: str = ""
    event: str = ""
    method: str = "POST"
    format: str = "form"
    notes: str = ""
    custom_data: tuple[tuple[str, str], ...] = ()
    signing_keys: tuple[signing.SigningKey, ...] = field(default=(), compare=False, repr=False)

    @property
    def active(self) -> bool:
        """Deliveries are sent (not held, not skipped)."""
        return self.enabled and not self.disabled_reason

    def spec(self) -> dict[str, Any]:
        """The kind-specific part, stored as JSON in `endpoints.spec`."""
        if self.kind == "webhook":
            return {
                "topics": sorted(self.topics),
                "keys": sorted(self.keys),
                "extensions": sorted(self.extensions),
                "schedule": list(self.schedule) if self.schedule is not None else None,
                "description": self.description,
            }
        return {
            "extension": self.extension,
            "event": self.event,
            "method": self.method,
            "format": self.format,
            "notes": self.notes,
            "custom_data": dict(self.custom_data),
        }

    def public(self) -> dict[str, Any]:
        """The API view: never the secrets themselves (they are shown once, on create)."""
        out: dict[str, Any] = {
            "id": self.endpoint_id,
            "tenant": self.tenant,
            "url": self.url,
            "enabled": self.enabled,
            "status": self.status,
            "disabled_reason": self.disabled_reason or None,
            "failing_since": self.failing_since,
            "secrets": [signing.mask(s) for s in self.secrets],
            "source": self.source,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        out.update(self.spec())
        return out

    @property
    def status(self) -> str:
        """One word for dashboards: enabled, failing, disabled (by the hub) or off (admin)."""
        if not self.enabled:
            return "off"
        if self.disabled_reason:
            return "disabled"
        return "failing" if self.health == "failing" else "enabled"


def build(**values: Any) -> Endpoint:
    """An Endpoint with its signing keys decoded once (not on every send). BadSecret for a
    secret that is not one: an endpoint with a secret is signed with it, or not built."""
    keys = tuple(signing.SigningKey(signing.secret_key(s)) for s in values.get("secrets", ()))
    return Endpoint(**values, signing_keys=keys)


BAD_SECRET = "bad-secret"


def unusable(**values: Any) -> Endpoint:
    """A stored endpoint whose secret is not valid (an older version let one in): held, so
    that nothing goes out unsigned, until its secret is replaced."""
    return Endpoint(**{**values, "disabled_reason": BAD_SECRET})


def webhook_matches(ep: Endpoint, ev: Event) -> bool:
    """Topics, keys and extensions filters; an empty filter lets everything through."""
    if ep.topics and ev.topic not in ep.topics:
        return False
    if ep.keys and ev.key not in ep.keys:
        return False
    return not ep.extensions or not ep.extensions.isdisjoint(ev.extensions)


class Index:
    """Enabled endpoints by tenant and by what they listen to, plus all endpoints by id."""

    def __init__(self, endpoints: Iterable[Endpoint] = ()) -> None:
        self.by_id: dict[str, Endpoint] = {}
        self._webhooks: dict[str, list[Endpoint]] = {}
        self._rules: dict[tuple[str, str], list[Endpoint]] = {}
        listening: set[str] = set()
        for ep in endpoints:
            self.by_id[ep.endpoint_id] = ep
            if not ep.enabled:
                continue
            listening.add(ep.tenant)
            if ep.kind == "webhook":
                self._webhooks.setdefault(ep.tenant, []).append(ep)
            else:
                for key in call_events.listens_to(ep.event):
                    self._rules.setdefault((ep.tenant, key), []).append(ep)
        # Tenants with an enabled endpoint: no other tenant's event can match (a set lookup).
        self.listening = frozenset(listening)

    def match(self, ev: Event) -> list[tuple[Endpoint, str]]:
        """(endpoint, call flow) for each endpoint this event goes to; flow '' for webhooks."""
        out: list[tuple[Endpoint, str]] = []
        for ep in self._webhooks.get(ev.tenant, ()):
            if webhook_matches(ep, ev):
                out.append((ep, ""))
        rules = self._rules.get((ev.tenant, ev.key))
        if rules:
            for ep in rules:
                f = call_events.flow(ep.event, ep.extension, ev.body, ev.extensions, ev.key)
                if f is not None:
                    out.append((ep, f))
        return out

    def get(self, endpoint_id: str) -> Endpoint | None:
        return self.by_id.get(endpoint_id)

    def replaced(self, ep: Endpoint) -> Index:
        """A new index with one endpoint changed (health, disabled state)."""
        return Index({**self.by_id, ep.endpoint_id: ep}.values())
