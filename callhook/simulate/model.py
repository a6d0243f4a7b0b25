"""What the simulator plans: phones, timed steps, the calls they make and what must come of them.

Times are simulated seconds from the start of the run (`at`); the runner divides them by the
speed to get wall-clock seconds. Everything here is plain data, built by `scenarios.generate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Flows that are calls (each yields one or more expected CDRs) and flows that only toggle
# a phone's state (DND, forwarding, registration).
CALL_FLOWS: tuple[str, ...] = (
    "inbound",
    "outbound",
    "internal",
    "ring_group",
    "shared_line",
    "blind_transfer",
    "attended_transfer",
    "hold",
    "missed",
    "abandoned",
    "reboot",
)
TOGGLE_FLOWS: tuple[str, ...] = ("dnd", "forward", "registration")
FLOWS: tuple[str, ...] = CALL_FLOWS + TOGGLE_FLOWS

# Relative weights of a working day: mostly plain inbound and outbound calls.
DEFAULT_MIX: Mapping[str, float] = {
    "inbound": 30,
    "outbound": 25,
    "internal": 12,
    "ring_group": 10,
    "shared_line": 2,
    "blind_transfer": 3,
    "attended_transfer": 2,
    "hold": 5,
    "missed": 5,
    "abandoned": 4,
    "reboot": 1,
    "dnd": 2,
    "forward": 1,
    "registration": 1,
}

# The CDR statuses a simulated call can be expected to end with (callhook.correlate.cdr).
STATUSES: tuple[str, ...] = ("answered", "missed", "abandoned", "no_answer", "failed")


@dataclass(frozen=True, slots=True)
class SimPhone:
    """One simulated desk phone: an extension and the device behind it."""

    extension: str
    mac: str
    vendor: str
    model: str
    firmware: str
    ip: str
    hook_urls: bool  # the admin also configured Off Hook / On Hook URLs on this phone


@dataclass(frozen=True, slots=True)
class Step:
    """One Action URL request a phone sends at simulated time `at` (canonical event name)."""

    at: float
    phone: str  # extension
    event: str  # canonical phone event (callhook.ingest.model.PHONE_EVENTS)
    variables: tuple[tuple[str, str], ...] = ()
    call: int = -1  # index of the expected call it belongs to; -1: not a call event


@dataclass(slots=True)
class ExpectedCall:
    """One session the hub should open and close with exactly one `call_cdr`."""

    index: int
    flow: str
    status: str  # expected CDR status (STATUSES)
    caller: str
    callee: str
    start: float  # simulated seconds
    call_ids: tuple[str, ...] = ()  # every phone leg's call id; the CDR's call_id is one of them
    extensions: tuple[str, ...] = ()
    talk_seconds: int | None = None  # the longest `$duration` the phones report, if any
    ring_seconds: float = 0.0  # simulated ring time of an unanswered call
    end_reason: str = ""  # "timeout" for a phone that rebooted mid-call; else not checked
    part: str = ""  # attended transfer: "original" or "consult"


@dataclass(frozen=True, slots=True)
class PhoneState:
    """An extension's DND, forwarding and registration state at the end of the run."""

    dnd: bool = False
    forward: bool = False
    registered: bool = True


@dataclass(slots=True)
class Plan:
    """A whole simulated run: phones, every step in send order, and what should come of it."""

    phones: tuple[SimPhone, ...]
    steps: list[Step]
    calls: list[ExpectedCall]
    flows: dict[str, int]  # flows drawn, by name (an attended transfer counts once)
    presence: dict[str, PhoneState]
    speed: float
    duration: float = 0.0  # simulated seconds from the first step to the last
    notes: list[str] = field(default_factory=list)
    hub_settings: dict[str, float] = field(default_factory=dict)  # timing.hub_settings

    @property
    def wall_seconds(self) -> float:
        """How long sending the plan takes at its speed, if the hub keeps up."""
        return self.duration / self.speed
