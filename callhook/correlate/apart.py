"""Calls that look like one but are two, or like two but are one: ring legs merge on the
caller's number, so a shared line's second call can look like a ring group, and a blind
transfer's target ringing just before the transfer is reported can look like a new call.

- `answered_apart` / `split_off`: a phone settled "answered elsewhere" that then reports an
  answer of its own call id was in a second call; its leg moves to a call of its own.
- `HeldRings`: a ring from the caller of an answered open call, too late to be one of its
  ring group, is held back for `merge_window`. The transfer that names its number takes it
  into the call; anything else (its phone's next report, or the wait running out) opens its
  own call, stamped when it rang. Each held ring is kept with the answered call's state, so
  a restart does not lose a report the phone was answered for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from callhook.correlate import bodies, parties
from callhook.correlate.bodies import TenantView
from callhook.correlate.sessions import SessionTable, mergeable_caller
from callhook.correlate.state import NOANSWER, RINGING, Leg, Session
from callhook.events import Event
from callhook.normalise import CallReport

_ANSWERS = frozenset({"answer", "hold", "unhold"})  # phases only an answered call reports
_ENDS = frozenset({"hangup", "missed"})
_MAX_HELD = 10_000  # rings held back at once, all tenants; beyond, they open their call at once


def answered_apart(s: Session, rep: CallReport) -> Leg | None:
    """The leg of `rep`'s phone if `rep` proves it answered a call other than `s`: it rang
    for `s` and was settled "answered elsewhere" by another called phone's own answer, and
    now reports an answer of the call id only its leg has. A phone that really lost the
    race reports Missed Call or a Terminate without talk time, or nothing."""
    if s.answer_time is None or not rep.call_id:
        return None
    if rep.phase not in _ANSWERS and not (rep.phase == "hangup" and rep.duration):
        return None
    leg = s.legs.get(rep.phone)
    if (
        leg is None
        or leg.state != NOANSWER
        or leg.role != "target"
        or leg.ring_start is None  # a late ring settled silently, maybe a transfer target
        or leg.call_id != rep.call_id
        or leg.number == s.answered_by
        or leg.phases & _ENDS
    ):
        return None
    if any(x is not leg and x.call_id == leg.call_id for x in s.legs.values()):
        return None  # one call forked to several phones: this one did lose
    return leg


def split_off(s: Session, leg: Leg, new: Session, tv: TenantView, table: SessionTable) -> Event:
    """Move `leg` from `s` to `new` (just opened), a call that started when it rang; returns
    its `call_start`. What `s` emitted stays; the leg's call id and phone lead to `new`."""
    del s.legs[leg.phone]
    if s.call_id == leg.call_id:  # it was the first to report: the call is the others'
        ids = [x.call_id for x in s.legs.values() if x.number == s.answered_by and x.call_id]
        ids += [x.call_id for x in s.legs.values() if x.call_id]
        s.call_id = next(iter(ids), "")
    start = leg.ring_start if leg.ring_start is not None else leg.since
    new.created_at = new.start_time = new.ring_start = start
    new.call_id = leg.call_id
    new.caller, new.callee, new.view = leg.remote, leg.number, 1
    if s.caller == leg.remote:
        new.caller_display_name = s.caller_display_name
    leg.state, leg.end_time = RINGING, None
    new.legs[leg.phone] = leg
    table.index_leg(new, leg)
    table.index_caller(new, new.caller)
    parties.refresh_extensions(new, tv)
    new.emitted.add("call_start")
    new.direction = bodies.direction(new)
    return bodies.call_start(new, tv, start)


class HeldRings:
    """Rings held back: (tenant, phone) -> (report, when it rang, the answered call that
    keeps it), and (tenant, number) -> phone, for the transfer that names the number."""

    def __init__(self, table: SessionTable, changed: Callable[[Session], None]) -> None:
        self._table = table
        self._changed = changed
        self._held: dict[tuple[str, str], tuple[CallReport, float, Session]] = {}
        self._numbers: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self._held)

    def hold_back(self, tenant: str, rep: CallReport, now: float) -> bool:
        """Hold `rep`, a ring that would open a call, if an answered call of the same caller
        is open (it may be that call's transfer target, reported before the transfer)."""
        if rep.phase != "ring" or rep.role == "caller" or len(self._held) >= _MAX_HELD:
            return False
        if not rep.own or not rep.remote or not mergeable_caller(rep.remote):
            return False
        answered = [
            x
            for x in self._table.by_caller.get((tenant, rep.remote), ())
            if not x.closed and x.answer_time is not None and rep.phone not in x.legs
        ]
        if not answered:
            return False
        keeper = answered[-1]
        self.remember(tenant, rep, now, keeper)
        keeper.held.append({"report": dataclasses.asdict(rep), "at": now})
        self._changed(keeper)
        return True

    def remember(self, tenant: str, rep: CallReport, at: float, keeper: Session) -> None:
        """Index a held ring (also on restore, from the call that keeps it)."""
        self._held[(tenant, rep.phone)] = (rep, at, keeper)
        self._numbers[(tenant, rep.own)] = rep.phone

    def release(self, tenant: str, phone: str) -> tuple[CallReport, float] | None:
        """The ring held for `phone`, no longer held (None: none was)."""
        held = self._held.pop((tenant, phone), None)
        if held is None:
            return None
        rep, at, keeper = held
        if self._numbers.get((tenant, rep.own)) == phone:
            del self._numbers[(tenant, rep.own)]
        keeper.held = [d for d in keeper.held if d["report"].get("phone") != phone]
        self._changed(keeper)
        return rep, at

    def release_number(self, tenant: str, number: str) -> tuple[CallReport, float] | None:
        """The ring held for the phone of `number` (a transfer's target), no longer held."""
        phone = self._numbers.get((tenant, number))
        return self.release(tenant, phone) if phone is not None else None

    def due(self, now: float, wait: float) -> list[tuple[str, str]]:
        """(tenant, phone) of the rings held longer than `wait`."""
        return [key for key, (_, at, _s) in self._held.items() if now - at > wait]
