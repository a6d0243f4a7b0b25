"""How sessions end: one phone's part (target_* events), and the whole call (closing
lifecycle event, call_ended, the CDR) on hangup, deadline or eviction.

Deadlines: a transferred call waits `merge_window` for its target; a phone ringing with
no news for `ring_timeout` stopped ringing unanswered, as if it had said Missed Call (a
caller's phone that only dials is given up on only if it is known to report answers); any
other open call idle for `session_timeout` is closed with end_reason "timeout".

A call ends with exactly one closing event, then its `call_cdr`: `call_fail` when it
failed, `call_noanswer` when nobody answered it (missed, or an outbound call the far end
did not pick up), else `call_ended` (answered, or the caller gave up at once: abandoned).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callhook.correlate import bodies, cdr
from callhook.correlate.bodies import TenantView
from callhook.correlate.presence import PresenceBook
from callhook.correlate.sessions import SessionTable
from callhook.correlate.state import (
    DIALING,
    ENDED,
    FAILED,
    LIVE,
    NEW,
    NOANSWER,
    RINGING,
    CorrelationSettings,
    Leg,
    Session,
)
from callhook.events import Event

Out = list[Event]
_ENDS = frozenset({"hangup", "missed"})  # phases of a phone that ended its own part
_TARGET_KEYS = {NOANSWER: "target_noanswer", FAILED: "target_fail"}  # else target_ended


class Endings:
    """Ends legs and sessions, and says when an open session is due."""

    def __init__(
        self,
        settings: CorrelationSettings,
        table: SessionTable,
        presence: PresenceBook,
        changed: Callable[[Session], None],
    ) -> None:
        self.settings = settings
        self.table = table
        self.presence = presence
        self._changed = changed

    def expire(self, s: Session, tv: TenantView, now: float) -> Out:
        """`s`'s deadline passed (tick): end the transfer wait, the ringing, or an idle call."""
        out: Out = []
        if s.wait_until is not None:
            self.close(s, tv, now, s.wait_reason or "hangup", out)
        elif s.answer_time is None and self.ring_decides(s):
            for leg in [x for x in s.legs.values() if x.state == RINGING]:
                self.missed(s, leg, tv, now, out, "ring_timeout", "ring_timeout")
            self.close(s, tv, now, "ring_timeout", out)  # a caller's phone alone: dialing
        else:
            self.close(s, tv, now, "timeout", out)
        return out

    def deadline(self, s: Session) -> float:
        if s.wait_until is not None:
            return s.wait_until
        if s.answer_time is None and self.ring_decides(s):
            start = s.ring_start if s.ring_start is not None else s.created_at
            return max(start, s.last_activity) + self.settings.ring_timeout
        return s.last_activity + self.settings.session_timeout

    def ring_decides(self, s: Session) -> bool:
        """Whether `ring_timeout` ends the unanswered call: a phone is ringing (ringing does
        not last hours: a call that only got Incoming Call was a ghost for session_timeout),
        or a caller's phone is dialing and is known to report answers (one configured without
        Establish Call may be talking: its Terminate Call comes later)."""
        for leg in s.legs.values():
            if leg.state == RINGING:
                return True
            if leg.state == DIALING:
                if leg.answers is None:  # learned once per leg (presence lookup)
                    leg.answers = bool(leg.number) and self.presence.reports(
                        s.tenant, leg.number, "establish_call"
                    )
                if leg.answers:
                    return True
        return False

    def missed(
        self,
        s: Session,
        leg: Leg,
        tv: TenantView,
        now: float,
        out: Out,
        why: str = "no_answer",
        end_reason: str = "no_answer",
    ) -> None:
        """A called phone stopped ringing unanswered (its Missed Call, or `ring_timeout`):
        its `target_noanswer`, then the call's end once no phone rings any more."""
        leg.role = "target"
        if s.answer_time is not None:
            why = "answered_elsewhere"
        self.leg_done(s, leg, tv, now, out, NOANSWER, why)
        if s.answer_time is None:
            if not any(x.state == RINGING for x in s.legs.values()):
                self.close(s, tv, now, end_reason, out)
        elif not self.others_live(s, leg):
            self.close(s, tv, now, "transferred" if s.reroutes else "hangup", out)

    def others_live(self, s: Session, leg: Leg) -> bool:
        """Is another phone still ringing or in this (answered) call?"""
        return any(x is not leg and x.state in LIVE for x in s.legs.values())

    def leg_done(
        self,
        s: Session,
        leg: Leg,
        tv: TenantView,
        now: float,
        out: Out,
        state: str,
        reason: str,
        fail_code: int | None = None,
    ) -> None:
        """End one phone's part; a called phone's end is a target_* event."""
        was = leg.state
        leg.state, leg.end_time = state, now
        if leg.role != "target" or (was == NEW and state == ENDED):
            return
        key = _TARGET_KEYS.get(state, "target_ended")
        extra: dict[str, Any] = {"call_target": bodies.party(s, tv, leg.number), "reason": reason}
        if fail_code is not None:
            extra["fail_code"] = fail_code
        out.append(bodies.call_event(s, tv, key, now, **extra))

    def revive_target(self, s: Session, target: str, tv: TenantView, now: float, out: Out) -> None:
        """A transfer's target rang just before the transfer was reported and was settled as a
        late ring of the answered call (silently, no target event): it rings for it after all."""
        for x in s.legs.values():
            if x.number == target and x.state == NOANSWER and not x.phases & _ENDS:
                x.state, x.end_time, x.ring_start = RINGING, None, x.since
                party = bodies.party(s, tv, target)
                out.append(bodies.call_event(s, tv, "target_add", now, call_target=party))
                out.append(bodies.call_event(s, tv, "target_ringing", now, call_target=party))

    def close(self, s: Session, tv: TenantView, now: float, reason: str, out: Out) -> None:
        """End session `s`: settle every leg, then the closing lifecycle events and the CDR."""
        if s.closed:
            return
        s.end_time = s.hangup_at if s.hangup_at is not None else now
        s.wait_until = None
        for leg in s.legs.values():
            if leg.state == RINGING:
                why = "answered_elsewhere" if s.answer_time is not None else reason
                self.leg_done(
                    s, leg, tv, now, out, NOANSWER, "caller_cancelled" if why == "hangup" else why
                )
            elif leg.state in LIVE:
                self.leg_done(s, leg, tv, now, out, ENDED, reason)
        s.direction = bodies.direction(s)
        s.status = cdr.decide_status(s, self.settings)
        s.end_reason = reason
        # One closing lifecycle event per call, then its CDR (PortSIP: `call_noanswer` is "no
        # answer in the specified time then hang up", `call_fail` "call has failed").
        if s.status == "failed":
            key, extra = "call_fail", {"fail_code": s.fail_code or 0}
        elif s.status == "missed" or (s.status == "no_answer" and s.view > 0):
            key, extra = "call_noanswer", {}
        else:
            key, extra = "call_ended", {}
        s.emitted.add(key)
        out.append(bodies.call_event(s, tv, key, now, **extra))
        out.append(cdr.cdr_event(s, tv, now))
        s.closed = True
        self.table.retire(s, now)
        for n in s.extensions:
            self.presence.end_call(tv.name, n, s.session_id)
        self._changed(s)
