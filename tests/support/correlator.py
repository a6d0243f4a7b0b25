"""A tenant, a correlator and a clock the test moves: the correlator unit tests' phones."""

from __future__ import annotations

from typing import Any

from callhook.correlate import CorrelationSettings, Correlator
from callhook.directory import Extension, Tenant
from callhook.events import Event
from callhook.ingest.model import PhoneEvent

T0 = 1_700_000_000.0
DOMAIN = "acme.example.com"


def uri(n: str) -> str:
    return f"sip:{n}@{DOMAIN}"


class Phones:
    """A tenant with extensions 101-104, a correlator and a clock the test moves."""

    def __init__(self, **settings: Any) -> None:
        self.now = T0
        self.tenant = Tenant(
            name="acme",
            tenant_id="42",
            domain=DOMAIN,
            extensions={
                n: Extension(n, f"User {n}", ("sales",)) for n in ("101", "102", "103", "104")
            },
        )
        self.c = Correlator(
            lambda name: self.tenant if name == "acme" else None,
            CorrelationSettings(**settings),
            clock=lambda: self.now,
        )
        self.log: list[Event] = []

    def send(
        self, event: str | None, pairs: dict[str, str] | None = None, **variables: str
    ) -> list[str]:
        out = self.c.feed(PhoneEvent("acme", event, variables, pairs=pairs or {}))
        self.log.extend(out)
        return [e.key for e in out]

    def tick(self, seconds: float = 0.0) -> list[str]:
        self.now += seconds
        out = self.c.tick()
        self.log.extend(out)
        return [e.key for e in out]

    def wait(self, seconds: float) -> None:
        self.now += seconds

    def one(self, key: str) -> dict[str, Any]:
        found = [e for e in self.log if e.key == key]
        assert len(found) == 1, f"{key}: {len(found)} events"
        return found[0].body

    def count(self, key: str) -> int:
        return sum(1 for e in self.log if e.key == key)

    def sessions(self) -> set[str | None]:
        return {e.session_id for e in self.log if e.session_id}


def restarted(
    p: Phones, after: float, states: list[dict[str, Any]] | None = None, **settings: Any
) -> Phones:
    """A new correlator restored from what `p` persisted, `after` seconds later."""
    if states is None:
        states = [d for _, _, d in p.c.drain_changes().sessions if d is not None]
    p2 = Phones(**settings)
    p2.now = p.now + after
    p2.c.restore(states, [])
    return p2
