"""Call flows as phones report them: each flow writes the steps of one call (or two).

A flow gets a `FlowBuilder` (the call's start time, the phones chosen for it, a seeded RNG)
and writes steps the way real phones send Action URLs: each phone its own call id, the
called phone `Incoming Call`, the calling phone `Outgoing Call`, `Terminate Call` with
`$duration`, `Off Hook`/`On Hook` from phones configured for them. Pure: no I/O, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from callhook.simulate.model import ExpectedCall, SimPhone, Step
from callhook.simulate.timing import Timing

GAP = 0.05  # between two phones' reports of one moment (simulated seconds)


@dataclass(slots=True)
class FlowBuilder:
    """Collects the steps and expected calls of one flow."""

    rng: random.Random
    timing: Timing
    t: float
    phones: list[SimPhone]
    new_call_id: Callable[[SimPhone], str]
    new_external: Callable[[], tuple[str, str]]
    first_index: int
    steps: list[Step] = field(default_factory=list)
    calls: list[ExpectedCall] = field(default_factory=list)
    busy: dict[str, float] = field(default_factory=dict)  # extension -> free again at

    def call(
        self,
        flow: str,
        status: str,
        caller: str,
        callee: str,
        *,
        ring_seconds: float = 0.0,
        end_reason: str = "",
        part: str = "",
    ) -> int:
        """Open an expected call; returns its index for the steps that belong to it."""
        index = self.first_index + len(self.calls)
        c = ExpectedCall(index, flow, status, caller, callee, self.t)
        c.ring_seconds, c.end_reason, c.part = ring_seconds, end_reason, part
        self.calls.append(c)
        return index

    def send(self, phone: SimPhone, at: float, event: str, call: int = -1, **v: str) -> None:
        """Phone `phone` reports `event` at `at`; extra variables as keyword arguments."""
        self.steps.append(Step(at, phone.extension, event, tuple(v.items()), call))
        self.busy[phone.extension] = max(self.busy.get(phone.extension, 0.0), at + 0.5)

    def leg(self, phone: SimPhone, call: int) -> str:
        """A new call id for `phone`'s leg of expected call `call`."""
        cid = self.new_call_id(phone)
        c = self.calls[call - self.first_index]
        c.call_ids = (*c.call_ids, cid)
        if phone.extension not in c.extensions:
            c.extensions = (*c.extensions, phone.extension)
        return cid

    def off_hook(self, phone: SimPhone, at: float) -> None:
        """The handset is lifted (only phones configured with hook URLs report it)."""
        if phone.hook_urls:
            self.send(phone, at, "off_hook")

    def on_hook(self, phone: SimPhone, at: float) -> None:
        """The handset is put down."""
        if phone.hook_urls:
            self.send(phone, at, "on_hook")

    def terminate(
        self,
        phone: SimPhone,
        at: float,
        call: int,
        cid: str,
        remote: str,
        since: float | None,
        hang_up: bool = True,
    ) -> int:
        """`Terminate Call` with `$duration`: whole seconds since this phone's Establish Call
        at `since` (0 when it never answered); then On Hook unless the phone still has
        another line (`hang_up` False)."""
        duration = 0 if since is None else max(0, round(at - since))
        self.send(
            phone, at, "terminate_call", call, remote=remote, call_id=cid, duration=str(duration)
        )
        if hang_up:
            self.on_hook(phone, at + 0.3)
        return duration


def talked(b: FlowBuilder, call: int, *durations: int) -> None:
    """Record the talk time the hub should report: the longest `$duration` sent."""
    b.calls[call - b.first_index].talk_seconds = max(durations)


def answered_inbound(b: FlowBuilder, a: SimPhone, flow: str) -> tuple[int, str, str, str, float]:
    """External caller rings `a`, who answers: (call, call id, number, name, answer time)."""
    number, name = b.new_external()
    call = b.call(flow, "answered", number, a.extension)
    cid = b.leg(a, call)
    b.send(a, b.t, "incoming_call", call, remote=number, display_remote=name, call_id=cid)
    answer = b.t + b.timing.answer_ring(b.rng)
    b.off_hook(a, answer - 0.2)
    b.send(a, answer, "establish_call", call, remote=number, call_id=cid)
    return call, cid, number, name, answer


def inbound(b: FlowBuilder) -> None:
    """An external caller rings one extension, which answers."""
    a = b.phones[0]
    call, cid, number, _, answer = answered_inbound(b, a, "inbound")
    talk = b.timing.talk(b.rng)
    talked(b, call, b.terminate(a, answer + talk, call, cid, number, answer))


def outbound(b: FlowBuilder, flow: str = "outbound", hold: bool = False) -> None:
    """An extension dials an external number; 15% of the time nobody picks up."""
    a = b.phones[0]
    number, _ = b.new_external()
    answered = hold or b.rng.random() >= 0.15
    call = b.call(flow, "answered" if answered else "no_answer", a.extension, number)
    cid = b.leg(a, call)
    b.off_hook(a, b.t)
    dial = b.t + 1.5
    b.send(a, dial, "outgoing_call", call, remote=number, call_id=cid)
    if not answered:
        b.terminate(a, dial + b.timing.missed_ring(b.rng), call, cid, number, None)
        return
    answer = dial + b.timing.answer_ring(b.rng)
    b.send(a, answer, "establish_call", call, remote=number, call_id=cid)
    end = _maybe_hold(b, a, call, cid, number, answer, hold)
    talked(b, call, b.terminate(a, end, call, cid, number, answer))


def _maybe_hold(
    b: FlowBuilder, a: SimPhone, call: int, cid: str, remote: str, answer: float, hold: bool
) -> float:
    """Talk (with 1-2 hold/resume cycles when `hold`); returns when the call ends."""
    t = answer + b.timing.talk(b.rng)
    if not hold:
        return t
    t = answer + b.timing.talk(b.rng, low=2.0) / 2
    for _ in range(b.rng.randint(1, 2)):
        b.send(a, t, "hold_call", call, remote=remote, call_id=cid)
        t += b.rng.uniform(5.0, 40.0)
        b.send(a, t, "resume_call", call, remote=remote, call_id=cid)
        t += b.timing.talk(b.rng, low=2.0) / 2
    return t


def hold(b: FlowBuilder) -> None:
    """An answered call, inbound or outbound, put on hold and resumed once or twice."""
    if b.rng.random() < 0.5:
        outbound(b, "hold", hold=True)
        return
    a = b.phones[0]
    call, cid, number, _, answer = answered_inbound(b, a, "hold")
    end = _maybe_hold(b, a, call, cid, number, answer, True)
    talked(b, call, b.terminate(a, end, call, cid, number, answer))


def internal_start(
    b: FlowBuilder, call: int, a: SimPhone, c: SimPhone, at: float, lift: bool = True
) -> tuple[str, str, float]:
    """`a` dials `c`: Outgoing Call on `a`, then Incoming Call on `c` (each its own call
    id); returns both call ids and when `c` starts ringing. `lift`: `a` lifts the handset
    first (not when it is already on a call)."""
    ca, cc = b.leg(a, call), b.leg(c, call)
    if lift:
        b.off_hook(a, at - 1.5)
    b.send(a, at, "outgoing_call", call, remote=c.extension, call_id=ca)
    rings = at + b.timing.cause()
    b.send(
        c, rings, "incoming_call", call, remote=a.extension, display_remote=a.extension, call_id=cc
    )
    return ca, cc, rings


def internal(b: FlowBuilder) -> None:
    """One extension calls another; both phones report, with different call ids."""
    a, c = b.phones[0], b.phones[1]
    call = b.call("internal", "answered", a.extension, c.extension)
    ca, cc, rings = internal_start(b, call, a, c, b.t + 1.5)
    answer = rings + b.timing.answer_ring(b.rng)
    b.off_hook(c, answer - 0.2)
    b.send(c, answer, "establish_call", call, remote=a.extension, call_id=cc)
    b.send(a, answer + GAP, "establish_call", call, remote=c.extension, call_id=ca)
    end = answer + b.timing.talk(b.rng)
    ends = [(a, ca, c, answer + GAP), (c, cc, a, answer)]
    if b.rng.random() < 0.5:  # either side may hang up first
        ends.reverse()
    durations = [
        b.terminate(p, end + i * GAP, call, cid, other.extension, since)
        for i, (p, cid, other, since) in enumerate(ends)
    ]
    talked(b, call, *durations)


def unanswered(b: FlowBuilder, flow: str) -> None:
    """`missed` or `abandoned`: nobody answers before the caller gives up. With two phones
    an internal call (the caller's phone ends it, the called phone reports Missed Call)."""
    ring = b.timing.missed_ring(b.rng) if flow == "missed" else b.timing.abandoned_ring(b.rng)
    status = b.timing.unanswered_status(ring)
    if len(b.phones) >= 2:
        a, c = b.phones[0], b.phones[1]
        call = b.call(flow, status, a.extension, c.extension, ring_seconds=ring)
        ca, cc, rings = internal_start(b, call, a, c, b.t + 1.5)
        b.terminate(a, rings + ring, call, ca, c.extension, None)
        b.send(c, rings + ring + GAP, "missed_call", call, remote=a.extension, call_id=cc)
        return
    a = b.phones[0]
    number, name = b.new_external()
    call = b.call(flow, status, number, a.extension, ring_seconds=ring)
    cid = b.leg(a, call)
    b.send(a, b.t, "incoming_call", call, remote=number, display_remote=name, call_id=cid)
    b.send(a, b.t + ring, "missed_call", call, remote=number, display_remote=name, call_id=cid)
