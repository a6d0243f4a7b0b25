"""What correlation remembers: settings, sessions (calls) and legs (one phone's part), and
their JSON-able form for persistence across restarts."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

# Leg states. A leg is live until it reaches one of DONE.
RINGING, DIALING, ESTABLISHED, NEW = "ringing", "dialing", "established", "new"
ENDED, NOANSWER, FAILED = "ended", "noanswer", "failed"
DONE: frozenset[str] = frozenset({ENDED, NOANSWER, FAILED})
LIVE = (NEW, DIALING, RINGING, ESTABLISHED)  # a leg still in the call
# wait_reason of a call whose called party redirected it (3xx): waiting for the caller to
# place it again to the new target (RFC 3261 section 8.1.3.4: the same Call-ID).
REDIRECTED = "redirected"


@dataclass(slots=True)
class CorrelationSettings:
    """Correlation tunables (seconds unless said otherwise)."""

    merge_window: float = 5.0  # two phones' legs of one internal call / ring group
    session_timeout: float = 4 * 3600  # idle open session closed with end_reason "timeout"
    ring_timeout: float = 180  # ringing nobody answered: decided "missed" by tick()
    min_ring_seconds: float = 5.0  # unanswered and rang less: "abandoned", else "missed"
    max_sessions_per_tenant: int = 50_000  # oldest closed with end_reason "evicted"
    dedup_window: float = 30.0  # repeats of a device event / reports for a closed call
    max_legs_per_session: int = 32  # phones (targets) one session tracks
    max_dedup_entries: int = 100_000  # device-event repeat memory, all tenants
    max_presence_per_tenant: int = 100_000  # extensions with presence state
    max_closed_sessions: int = 100_000  # closed sessions kept dedup_window for late reports
    fault_event: str = ""  # tests only ([testing] correlator_fault): this phone event raises


@dataclass(slots=True)
class Changes:
    """State changed since the last drain, to persist with the events in one transaction."""

    sessions: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    presence: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Leg:
    """One phone's part in a session."""

    phone: str  # phone key (normalise.phone_identity)
    number: str  # its own number, "" when unknown
    role: str = ""  # "caller", "target" or "" (unknown)
    state: str = NEW
    call_id: str = ""
    remote: str = ""
    ring_start: float | None = None
    answer_time: float | None = None
    end_time: float | None = None
    duration: int | None = None
    held: bool | None = None  # last hold transition reported by this phone
    transferred: bool = False
    phases: set[str] = field(default_factory=set)  # phases this phone reported for the call
    since: float = 0.0  # when this phone first reported the call
    answers: bool | None = None  # the phone is known to report Establish Call (None: unknown)

    def to_dict(self) -> dict[str, Any]:
        # Spelled out: drain_changes() calls this for every changed call, often.
        return {
            "phone": self.phone,
            "number": self.number,
            "role": self.role,
            "state": self.state,
            "call_id": self.call_id,
            "remote": self.remote,
            "ring_start": self.ring_start,
            "answer_time": self.answer_time,
            "end_time": self.end_time,
            "duration": self.duration,
            "held": self.held,
            "transferred": self.transferred,
            "phases": sorted(self.phases),
            "since": self.since,
            "answers": self.answers,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Leg:
        leg = cls(**{k: d[k] for k in _LEG_FIELDS if k in d and k != "phases"})
        leg.phases = set(d.get("phases", ()))
        return leg


_LEG_FIELDS = tuple(f.name for f in fields(Leg))


@dataclass(slots=True, eq=False)
class Session:
    """One call: every phone's leg of it, and which lifecycle events were already emitted."""

    tenant: str
    session_id: str
    cdr_id: str
    created_at: float
    last_activity: float
    call_id: str = ""
    caller: str = ""
    callee: str = ""
    caller_display_name: str = ""
    did: str = ""  # the public number called, when a report said it
    view: int = 0  # who set caller/callee: 0 a guess, 1 a called phone, 2 the caller's phone
    direction: str = ""
    start_time: float | None = None
    ring_start: float | None = None
    answer_time: float | None = None
    end_time: float | None = None
    answered_by: str = ""  # number of the phone that answered
    fail_code: int | None = None
    status: str = ""
    end_reason: str = ""
    closed: bool = False
    # Waiting before closing: for a transfer's target ("transferred") or for the other
    # phone's own Terminate Call after one party hung up ("hangup"), until wait_until.
    wait_until: float | None = None
    wait_reason: str = ""
    hangup_at: float | None = None  # when the call ended, if it is closed later
    legs: dict[str, Leg] = field(default_factory=dict)
    emitted: set[str] = field(default_factory=set)  # lifecycle keys sent (once per session)
    reroutes: set[str] = field(default_factory=set)
    transfer_targets: list[str] = field(default_factory=list)
    extensions: tuple[str, ...] = ()
    # Rings of other phones held back while they may be this call's transfer target
    # (calls.py): {"report": CallReport fields, "at": when it rang}, kept with the call so
    # that a restart does not lose them.
    held: list[dict[str, Any]] = field(default_factory=list)
    # Outside parties' SIP hosts when a PBX said them (`sip:0711@carrier.example.net`: the
    # trunk's domain); other parties are written with the tenant's domain.
    hosts: dict[str, str] = field(default_factory=dict)
    closed_at: float = 0.0  # when it closed: findable by late reports for dedup_window
    # Bookkeeping, rebuilt on restore: timer and the index keys this session holds.
    deadline: float = math.inf
    heap_at: float = math.inf
    w_caller: str = ""  # caller / callee as written in bodies (bodies.render_parties)
    w_callee: str = ""
    idx_calls: list[str] = field(default_factory=list)
    idx_phones: list[str] = field(default_factory=list)
    idx_pairs: list[tuple[str, str]] = field(default_factory=list)
    idx_callers: list[str] = field(default_factory=list)

    @property
    def answered(self) -> bool:
        return self.answer_time is not None

    def state(self) -> str:
        """Coarse state for active-call views."""
        if self.closed:
            return "ended"
        if self.answer_time is None:
            return "ringing" if self.has_ringing() else "dialing"
        if self.wait_until is not None:
            return "transferring" if self.wait_reason == "transferred" else "ending"
        if any(leg.held for leg in self.legs.values()):
            return "held"
        return "established"

    def may_include(self, number: str, view: int) -> bool:
        """Can `number` ("": unknown) be a party: callee, answerer, a phone, a target? Only
        a caller's view (2) says who was called: a called phone's (ring group) cannot."""
        if view < 2 or not number or number in (self.callee, self.answered_by):
            return True
        return number in self.transfer_targets or any(
            leg.number == number for leg in self.legs.values()
        )

    def has_ringing(self) -> bool:
        return any(leg.state == RINGING for leg in self.legs.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state, everything restore() needs (see _SESSION_FIELDS)."""
        return {
            "tenant": self.tenant,
            "session_id": self.session_id,
            "cdr_id": self.cdr_id,
            "created_at": self.created_at,
            "last_activity": self.last_activity,
            "call_id": self.call_id,
            "caller": self.caller,
            "callee": self.callee,
            "caller_display_name": self.caller_display_name,
            "did": self.did,
            "view": self.view,
            "direction": self.direction,
            "start_time": self.start_time,
            "ring_start": self.ring_start,
            "answer_time": self.answer_time,
            "end_time": self.end_time,
            "answered_by": self.answered_by,
            "fail_code": self.fail_code,
            "status": self.status,
            "end_reason": self.end_reason,
            "closed": self.closed,
            "wait_until": self.wait_until,
            "wait_reason": self.wait_reason,
            "hangup_at": self.hangup_at,
            "closed_at": self.closed_at,
            "legs": [leg.to_dict() for leg in self.legs.values()],
            "emitted": sorted(self.emitted),
            "reroutes": sorted(self.reroutes),
            "transfer_targets": list(self.transfer_targets),
            "extensions": list(self.extensions),
            "held": list(self.held),
            "hosts": dict(self.hosts),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Session:
        s = cls(**{k: d[k] for k in _SESSION_FIELDS if k in d})
        for item in d.get("legs", ()):
            leg = Leg.from_dict(item)
            s.legs[leg.phone] = leg
        s.emitted = set(d.get("emitted", ()))
        s.reroutes = set(d.get("reroutes", ()))
        s.transfer_targets = list(d.get("transfer_targets", ()))
        s.extensions = tuple(d.get("extensions", ()))
        s.held = list(d.get("held", ()))
        s.hosts = {str(k): str(v) for k, v in dict(d.get("hosts") or {}).items()}
        return s


_SESSION_FIELDS = (
    "tenant",
    "session_id",
    "cdr_id",
    "created_at",
    "last_activity",
    "call_id",
    "caller",
    "callee",
    "caller_display_name",
    "did",
    "view",
    "direction",
    "start_time",
    "ring_start",
    "answer_time",
    "end_time",
    "answered_by",
    "fail_code",
    "status",
    "end_reason",
    "closed",
    "wait_until",
    "wait_reason",
    "hangup_at",
    "closed_at",
)
