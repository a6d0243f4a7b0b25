"""The call state machine: each phone's report moves its leg, and the session emits each
lifecycle event once, whichever phone reports it first and in whatever order reports come.

Decisions:
- a session starts from any report; one that does not start with Incoming/Outgoing Call
  still gets its `call_start` first, so every session reads start .. end;
- every session ends with one closing event then one `call_cdr`: `call_ended`, or for an
  unanswered call `call_noanswer` (missed, no_answer) or `call_fail` (failed) instead;
- "answered elsewhere" is decided when a called phone answers: the others ringing get
  `target_noanswer` with that reason at once;
- hangup of an answered call ends it (the other phone's Terminate may be lost), except for a
  phone that transferred the call: then the session waits `merge_window` for the target;
- a shared line's second call that looked like a ring group is split off, and a ring that
  may be a blind transfer's target is held back until the transfer is reported (apart.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from callhook.correlate import bodies, parties
from callhook.correlate.apart import HeldRings, answered_apart, split_off
from callhook.correlate.bodies import TenantView
from callhook.correlate.endings import Endings
from callhook.correlate.presence import PresenceBook
from callhook.correlate.sessions import SessionTable
from callhook.correlate.state import (
    DIALING,
    DONE,
    ENDED,
    ESTABLISHED,
    FAILED,
    LIVE,
    NEW,
    NOANSWER,
    REDIRECTED,
    RINGING,
    CorrelationSettings,
    Leg,
    Session,
)
from callhook.events import Event, new_id, unix_time
from callhook.normalise import REDIRECT, CallReport

Out = list[Event]
_MAX_REROUTES = 16


class CallFlow:
    """Applies CallReports to sessions, emitting what each one means."""

    def __init__(
        self,
        settings: CorrelationSettings,
        table: SessionTable,
        presence: PresenceBook,
        end: Endings,
        changed: Callable[[Session], None],
    ) -> None:
        self.settings = settings
        self.table = table
        self.presence = presence
        self.end = end
        self._changed = changed
        self.held = HeldRings(table, changed)  # rings held back for a transfer (apart.py)
        self._phases: dict[str, Callable[[Session, Leg, CallReport, TenantView, float, Out], None]]
        self._phases = {
            "ring": self._ring,
            "dial": self._dial,
            "answer": self._answer,
            "hangup": self._hangup,
            "missed": self._missed,
            "hold": self._hold,
            "unhold": self._hold,
            "transfer": self._transfer,
        }

    # -- entry points ----------------------------------------------------------------------
    def apply(self, tv: TenantView, rep: CallReport, now: float) -> Out:
        out: Out = []
        held = self.held.release(tv.name, rep.phone)
        if held is not None:  # the phone says more: its ring was a call of its own
            out.extend(self._apply(tv, *held, held=True))
        out.extend(self._apply(tv, rep, now))
        return out

    def release_held(self, tenant_view: Callable[[str], TenantView], now: float) -> Out:
        """Rings held back longer than merge_window, with no transfer naming them: each is a
        call of its own (ring_timeout then decides it, like any ringing)."""
        out: Out = []
        for tenant, phone in self.held.due(now, self.settings.merge_window):
            held = self.held.release(tenant, phone)
            if held is not None:
                out.extend(self._apply(tenant_view(tenant), *held, held=True))
        return out

    def _apply(self, tv: TenantView, rep: CallReport, now: float, held: bool = False) -> Out:
        """Apply one report; `held`: a ring held back before, never held again."""
        out: Out = []
        s = self.table.find(tv.name, rep, now)
        apart = answered_apart(s, rep) if s is not None else None
        if s is not None and apart is not None:  # a shared line's second call
            new = self._open(tv, rep, now, out)
            out.append(split_off(s, apart, new, tv, self.table))
            self._changed(s)
            s = new
        elif s is not None and s.closed:
            return out  # a late or repeated report of a call that has ended
        if s is None and not held and self.held.hold_back(tv.name, rep, now):
            return out
        if s is None:
            s = self._open(tv, rep, now, out)
        leg = s.legs.get(rep.phone)
        known = leg is not None
        if leg is None:
            if len(s.legs) >= self.settings.max_legs_per_session:
                return out  # bound per-session memory; this phone's part is not tracked
            leg = s.legs[rep.phone] = Leg(rep.phone, rep.own, rep.role, NEW, rep.call_id, since=now)
            if rep.phase != "transfer":  # a transfer's remote is its target, not the party
                leg.remote = rep.remote
        elif (
            (rep.call_id and not leg.call_id)
            or (rep.role and not leg.role)
            or (rep.remote and not leg.remote and rep.phase != "transfer")
            or (not s.caller_display_name and (rep.display_remote or rep.display_local))
        ):
            known = False  # the phone said more about its leg than before: re-learn
            leg.call_id = leg.call_id or rep.call_id
            leg.role = leg.role or rep.role
            if rep.phase != "transfer":
                leg.remote = leg.remote or rep.remote
        leg.phases.add(rep.phase)
        s.last_activity = now
        if rep.did and not s.did:
            s.did = rep.did
        if not known:
            self.table.index_leg(s, leg)
            s.call_id = s.call_id or rep.call_id
            parties.learn(s, leg, rep, tv, self.table)
        start: Event | None = None
        if "call_start" not in s.emitted:
            s.emitted.add("call_start")
            s.direction = bodies.direction(s)
            start = bodies.call_start(s, tv, now)
            out.append(start)
        before = leg.state
        self._phases[rep.phase](s, leg, rep, tv, now, out)
        if start is not None and s.start_time is not None and s.start_time < now:
            # A first report that says the call began earlier (a Terminate Call with talk
            # time): the call started then, not after the answer it reports.
            start.body["time"] = unix_time(s.start_time)
        if not s.closed:
            if known and leg.state == before and s.answer_time is not None and s.wait_until is None:
                # Nothing changed but the activity: the idle timer moves later (lazy heap).
                s.deadline = now + self.settings.session_timeout
            else:
                self.table.schedule(s, self.end.deadline(s))
                self._sync_presence(s, tv)
        self._changed(s)
        return out

    # -- session bookkeeping ---------------------------------------------------------------
    def _open(self, tv: TenantView, rep: CallReport, now: float, out: Out) -> Session:
        while self.table.count(tv.name) >= max(1, self.settings.max_sessions_per_tenant):
            oldest = self.table.oldest(tv.name)
            if oldest is None:
                break
            self.end.close(oldest, tv, now, "evicted", out)
        s = Session(tv.name, new_id(), new_id(), now, now, start_time=now)
        self.table.add(s)
        return s

    def _sync_presence(self, s: Session, tv: TenantView) -> None:
        ringing = {leg.number for leg in s.legs.values() if leg.state == RINGING}
        for n in s.extensions:
            self.presence.set_call(tv.name, n, s.session_id, n in ringing)

    # -- phases ----------------------------------------------------------------------------
    def _ring(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if leg.state != NEW or leg.role == "caller":
            return  # a repeat, or it arrived after the phone answered / ended
        if s.answer_time is not None and leg.number not in s.transfer_targets:
            # A late ring of an answered call: its answerer, or a ring group member that lost.
            leg.role = "target"
            if leg.number == s.answered_by:
                leg.state, leg.answer_time = ESTABLISHED, s.answer_time
            else:
                leg.state, leg.end_time = NOANSWER, now
            return
        leg.role, leg.state, leg.ring_start = "target", RINGING, now
        if s.ring_start is None or now < s.ring_start:
            s.ring_start = now
        if s.wait_reason == "transferred":  # the transfer target rings: the call goes on
            s.wait_until, s.wait_reason, s.hangup_at = None, "", None
        elif s.wait_reason == REDIRECTED:
            self._resume(s)
        target = bodies.party(s, tv, leg.number)
        out.append(bodies.call_event(s, tv, "target_add", now, call_target=target))
        out.append(bodies.call_event(s, tv, "target_ringing", now, call_target=target))

    def _dial(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if s.wait_reason == REDIRECTED:  # the caller follows the redirect: the call goes on
            self._resume(s)
        if leg.state == NEW:
            leg.role = "caller"
            # A late Outgoing Call of an answered call: the caller is in the call.
            leg.state = DIALING if s.answer_time is None else ESTABLISHED

    @staticmethod
    def _resume(s: Session) -> None:
        """A redirected call goes on: no longer waiting, and no longer failed."""
        s.wait_until, s.wait_reason, s.fail_code = None, "", None

    def _answer(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if leg.state in LIVE and leg.state != ESTABLISHED:
            self._establish(s, leg, tv, now, out)

    def _establish(self, s: Session, leg: Leg, tv: TenantView, at: float, out: Out) -> None:
        leg.state, leg.answer_time = ESTABLISHED, at
        if s.answer_time is not None:
            return  # answered already (the other end's report, or a transfer target)
        s.answer_time = at
        answerer: Leg | None = leg if leg.role == "target" else None
        if leg.role == "caller":
            ringing = [x for x in s.legs.values() if x.role == "target" and x.state == RINGING]
            if len(ringing) == 1:  # the caller's phone says answered: the one ringing did
                answerer = ringing[0]
                answerer.state, answerer.answer_time = ESTABLISHED, at
        s.answered_by = (
            answerer.number
            if answerer is not None
            else (s.callee if leg.role == "caller" or leg.number == s.caller else leg.number)
        )
        parties.refresh_extensions(s, tv)
        target = bodies.party(s, tv, s.answered_by)
        s.emitted.add("call_established")
        out.append(bodies.call_event(s, tv, "call_established", at, call_target=target))
        if answerer is not None:
            for other in s.legs.values():
                if other is not answerer and other.role == "target" and other.state == RINGING:
                    self.end.leg_done(s, other, tv, at, out, NOANSWER, reason="answered_elsewhere")

    def _hangup(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if leg.state in DONE:
            return
        if rep.duration is not None:
            leg.duration = rep.duration
        if rep.duration and leg.state != ESTABLISHED:
            # It talked, so it was answered: its Establish Call was lost or not configured.
            at = now - rep.duration
            if leg.ring_start is not None or s.ring_start is not None:
                at = max(at, leg.ring_start if leg.ring_start is not None else s.ring_start or 0)
            if s.created_at < now:  # what was sent since the call began stays before it
                at = max(at, s.created_at)
            s.start_time = min(s.start_time if s.start_time is not None else at, at)
            self._establish(s, leg, tv, at, out)
        was = leg.state
        if s.answer_time is not None:
            if was == RINGING:
                self.end.leg_done(s, leg, tv, now, out, NOANSWER, "ended")
            else:
                self.end.leg_done(s, leg, tv, now, out, ENDED, "hangup")
            if (leg.transferred or was == RINGING) and self.end.others_live(s, leg):
                return
            if leg.transferred:  # wait for the target to ring
                s.wait_until, s.wait_reason = now + self.settings.merge_window, "transferred"
                s.hangup_at = now
                return
            talking = any(x.state == ESTABLISHED for x in s.legs.values())
            if talking and s.hangup_at is None:
                # The other party's phone reports its own end (and talk time) in a moment:
                # close with both; tick() closes it if that report never comes.
                s.wait_until, s.wait_reason = now + self.settings.merge_window, "hangup"
                s.hangup_at = now
                return
            self.end.close(s, tv, now, "hangup", out)
            return
        if leg.role == "target":  # the called phone ended its ringing (declined or cancelled)
            if rep.fail_code is not None:
                s.fail_code = rep.fail_code
                why = "redirected" if leg.transferred else "declined"
                self.end.leg_done(s, leg, tv, now, out, FAILED, why, rep.fail_code)
            else:
                self.end.leg_done(s, leg, tv, now, out, NOANSWER, "ended")
            if leg.transferred and not any(x.state == RINGING for x in s.legs.values()):
                # Redirected: wait for the caller's new INVITE to the target; if none comes
                # the call failed with the 3xx.
                s.wait_until, s.wait_reason = now + self.settings.merge_window, REDIRECTED
                return
            if not any(x.state == RINGING for x in s.legs.values()):
                self.end.close(s, tv, now, "failed" if s.fail_code is not None else "hangup", out)
            return
        if rep.fail_code is not None:
            s.fail_code = rep.fail_code
        leg.state, leg.end_time = ENDED, now  # the caller gave up (or we cannot tell who)
        self.end.close(s, tv, now, "failed" if s.fail_code is not None else "hangup", out)

    def _missed(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if leg.state in DONE or leg.state == ESTABLISHED or leg.role == "caller":
            return
        self.end.missed(s, leg, tv, now, out)  # the path ring_timeout takes too

    def _hold(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if leg.state in DONE:
            return
        if leg.state != ESTABLISHED:
            self._establish(s, leg, tv, now, out)  # on hold means the call was answered
        held = rep.phase == "hold"
        if leg.held is held:
            return  # the same transition again: a duplicate
        leg.held = held
        peer = leg.remote or (s.callee if leg.number == s.caller else s.caller)
        key = "call_hold" if held else "call_unhold"
        out.append(bodies.hold_event(s, tv, key, now, leg.number, peer, leg.call_id))

    def _transfer(
        self, s: Session, leg: Leg, rep: CallReport, tv: TenantView, now: float, out: Out
    ) -> None:
        if leg.state in DONE:
            return
        redirect = rep.reason == REDIRECT
        if redirect:
            # The called party sent the call elsewhere (3xx) before answering: the call is
            # not answered; the caller may place it again to the target (same Call-ID).
            if s.answer_time is not None:
                return
            leg.role = "target"
        elif leg.state != ESTABLISHED:
            self._establish(s, leg, tv, now, out)
        target = rep.remote
        sig = f"{leg.phone}|{target}|{rep.reason}"
        if sig in s.reroutes or len(s.reroutes) >= _MAX_REROUTES:
            return
        s.reroutes.add(sig)
        leg.transferred = True
        if target and target != leg.number:
            self.table.index_transfer(s, target)
            parties.refresh_extensions(s, tv)
            self.end.revive_target(s, target, tv, now, out)
            held = self.held.release_number(tv.name, target)
            if held is not None:  # the target rang just before: it rings for this call
                out.extend(self._apply(tv, held[0], now, held=True))
        body: dict[str, Any] = {
            "call_target": bodies.party(s, tv, target),
            "reason": rep.reason,
            "transferred_by": bodies.party(s, tv, leg.number),
        }
        out.append(bodies.call_event(s, tv, "call_reroute", now, **body))
