"""Call detail records: the outcome of a closed session, as a `call_cdr` event.

Statuses (answered, missed, failed, no_answer; the minimum ring time adds abandoned):
- answered: someone answered (Establish Call, or a Terminate Call with talk time);
- failed: unanswered and a failure code was reported;
- missed: unanswered, one of the tenant's extensions rang at least `min_ring_seconds` (or a
  phone reported Missed Call without saying when it started ringing);
- abandoned: unanswered, rang less than `min_ring_seconds` (the caller gave up at once);
- no_answer: unanswered and none of the tenant's extensions was the called party (an
  outbound call the far end did not pick up), or nothing says who was called.
"""

from __future__ import annotations

from typing import Any

from callhook.correlate.bodies import TenantView, add_numbers, party
from callhook.correlate.state import CorrelationSettings, Session
from callhook.events import Event, unix_time

STATUSES = ("answered", "missed", "failed", "no_answer", "abandoned")


def ring_seconds(s: Session) -> int:
    """From the first ring (or the start) to the answer, or to the end when unanswered."""
    start = s.ring_start if s.ring_start is not None else s.start_time
    stop = s.answer_time if s.answer_time is not None else s.end_time
    if start is None or stop is None:
        return 0
    return max(0, round(stop - start))


def talk_seconds(s: Session) -> int:
    """The phones' `$duration` when given (the longest), else answer to end."""
    reported = [leg.duration for leg in s.legs.values() if leg.duration is not None]
    if reported:
        return max(reported)
    if s.answer_time is None or s.end_time is None:
        return 0
    return max(0, round(s.end_time - s.answer_time))


def decide_status(s: Session, settings: CorrelationSettings) -> str:
    """The CDR status of a session that is closing (see the module docstring)."""
    if s.answer_time is not None:
        return "answered"
    if s.fail_code is not None:
        return "failed"
    called_ours = (bool(s.callee) and s.callee in s.extensions) or any(
        leg.role == "target" for leg in s.legs.values()
    )
    if not called_ours or (s.view == 0 and s.ring_start is None):
        return "no_answer"
    if s.ring_start is None and any(leg.role == "target" for leg in s.legs.values()):
        return "missed"  # Missed Call alone: the phone's word, ring time unknown
    return "missed" if ring_seconds(s) >= settings.min_ring_seconds else "abandoned"


def cdr_event(s: Session, tv: TenantView, now: float) -> Event:
    """The `call_cdr` event (topic cdr_events) of closed session `s`."""

    def stamp(t: float | None) -> str:
        return unix_time(t) if t is not None else ""

    body: dict[str, Any] = {
        "answer_time": stamp(s.answer_time),
        "call_id": s.call_id,
        "call_target": party(s, tv, s.answered_by),
        "callee": party(s, tv, s.callee),
        "caller": party(s, tv, s.caller),
        "caller_display_name": s.caller_display_name,
        "cdr_id": s.cdr_id,
        "direction": s.direction,
        "end_reason": s.end_reason,
        "end_time": stamp(s.end_time),
        "event_type": "call_cdr",
        "extensions": list(s.extensions),
        "ring_seconds": ring_seconds(s),
        "session_id": s.session_id,
        "start_time": stamp(s.start_time),
        "status": s.status,
        "talk_seconds": talk_seconds(s),
        "tenant_id": tv.tenant_id,
        "tenant_name": tv.tenant_name,
        "time": unix_time(now),
    }
    if s.did:
        body["did"] = s.did
    add_numbers(body)
    return tv.event("call_cdr", body, s.extensions, s.session_id)
