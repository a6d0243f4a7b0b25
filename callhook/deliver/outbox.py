"""The durable outbox: which deliveries an event makes, asked for in its own transaction.

`Outbox.tx_hook` runs inside the event log's append transaction (EventLog.tx_hooks), so an
event and its deliveries commit together or not at all: a crash at any point loses none.
The rows it asked for come back in the write's result (`Appended.deliveries`), from which
`items` builds the in-memory queue entries without another read. What the hook notes in
memory about calls is put back as it was if the transaction rolls back.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson

from callhook.deliver import call_events
from callhook.deliver.parties import Parties
from callhook.deliver.rules import Endpoint, Index
from callhook.events import Event, new_id
from callhook.store import AppendTx
from callhook.store.records import Appended, Item, NewDelivery

log = logging.getLogger("callhook.deliver")

# A delivery row's status: pending (queued or retrying), succeeded, failed (gave up),
# held (its endpoint is disabled by the hub; kept for replay).
STATUSES = ("pending", "succeeded", "failed", "held")
_SESSIONS_TRACKED = 100_000
_TRACKED = frozenset(("call_start", "call_established"))
_NO_MATCH: tuple[tuple[Endpoint, str], ...] = ()  # what says a call was answered
# How far back to look for a call's answer or start when its start predates this process.
_ANSWER_LOOKBACK = 6 * 3600.0


class Outbox:
    """Creates delivery rows for committed events; knows which calls were answered."""

    def __init__(self, index: Callable[[], Index], clock: Callable[[], float] = time.time) -> None:
        self._index = index
        self._clock = clock
        # session_id -> answered? for sessions whose start this process has seen
        self._answered: OrderedDict[str, bool] = OrderedDict()
        # session_id -> caller, callee, direction, caller name (not every body says them)
        self.parties = Parties(_SESSIONS_TRACKED)

    def tx_hook(self, tx: AppendTx, events: list[Event]) -> None:
        """EventLog tx hook: one `deliveries` row per (matching endpoint, event)."""
        index = self._index()
        now = self._clock()
        rows: list[NewDelivery] = []
        journal: dict[str, tuple[bool | None, Any]] = {}  # session -> what it was before
        # The correlator appends call_ended and the session's call_cdr together: the CDR
        # says whether the call was answered (ANSWER / UNKNOWN for hangup rules).
        cdr_answered = {
            ev.session_id: ev.body.get("status") == "answered"
            for ev in events
            if ev.key == "call_cdr" and ev.session_id
        }
        match, note = index.match, self.parties.note  # per event, on the writer thread
        listening = index.listening
        for ev in events:
            session = ev.session_id or _str(ev.body.get("session_id"))
            try:
                matched = match(ev) if ev.tenant in listening else _NO_MATCH
                if session and session not in journal:
                    journal[session] = (self._answered.get(session), self.parties.entry(session))
                if ev.key in _TRACKED:
                    self._track(ev)
                if session:
                    note(session, ev.body, start=ev.key == "call_start")
                call = None
                if session and matched and any(ep.kind == "call_event" for ep, _f in matched):
                    call = self._call(tx, ev, session)
            except Exception:  # a matching bug must never fail the event's transaction
                log.exception("matching endpoints failed", extra={"event_id": ev.event_id})
                continue
            if not matched:
                continue
            for ep, _flow in matched:
                did = new_id()
                context = ""
                if ep.kind == "call_event":
                    ctx: dict[str, Any] = {}
                    if ev.key == "call_ended":
                        answered = cdr_answered.get(session) if session else None
                        if answered is None:
                            answered = self._was_answered(tx, ev)
                        if answered:
                            ctx["answered"] = True
                    if call:
                        ctx["call"] = call
                    context = orjson.dumps(ctx).decode() if ctx else ""
                status = "pending" if ep.active else "held"
                rows.append(
                    NewDelivery(did, ep.endpoint_id, ev.tenant, ev.seq, ev.event_id, ev.key,
                                session, status, context, now)
                )  # fmt: skip
        if journal:
            tx.on_rollback(lambda: self._undo(journal))
        if rows:
            tx.add_deliveries(rows)

    def _undo(self, journal: dict[str, tuple[bool | None, Any]]) -> None:
        for session, (answered, parties) in journal.items():
            if answered is None:
                self._answered.pop(session, None)
            else:
                self._answered[session] = answered
            self.parties.put(session, parties)

    def items(self, committed: Appended) -> list[Item]:
        """The pending deliveries a committed append created, ready for the queues."""
        if not committed.deliveries:
            return []
        by_seq = {(ev.tenant, ev.seq): ev for ev in committed.events}
        now = self._clock()
        out: list[Item] = []
        for d in committed.deliveries:
            ev = by_seq.get((d.tenant, d.seq))
            if d.status != "pending" or ev is None:
                continue
            wire = ev.wire_bytes()  # the bytes the log stored
            out.append(Item(d.delivery_id, d.endpoint_id, d.seq, d.event_id, d.session, 0, 0,
                            now, wire, ev.extensions, d.context))  # fmt: skip
        return out

    def _track(self, ev: Event) -> None:
        if ev.key not in _TRACKED:
            return
        sid = ev.session_id or _str(ev.body.get("session_id"))
        if not sid:
            return
        answered = ev.key == "call_established" or self._answered.get(sid, False)
        self._answered[sid] = answered
        self._answered.move_to_end(sid)
        if len(self._answered) > _SESSIONS_TRACKED:
            self._answered.popitem(last=False)

    def _call(self, tx: AppendTx, ev: Event, session: str) -> dict[str, str]:
        """The call's parties this event does not say, for its Call Events requests."""
        if not self.parties.whole(session):
            # The call started before this process did: its call_start says them (rare,
            # once per session, bounded by time).
            body = tx.first_event_body(
                ev.tenant, session, "call_start", self._clock() - _ANSWER_LOOKBACK
            )
            self.parties.recall(session, orjson.loads(body) if body else None)
        return self.parties.missing(session, ev.body)

    def _was_answered(self, tx: AppendTx, ev: Event) -> bool:
        said = call_events.answered(ev.body)
        if said is not None:
            return said
        sid = ev.session_id or _str(ev.body.get("session_id"))
        if not sid:
            return False
        known = self._answered.get(sid)
        if known is not None:
            return known
        # The call started before this process did: ask the log (rare, bounded by time).
        since = self._clock() - _ANSWER_LOOKBACK
        return tx.first_event_body(ev.tenant, sid, "call_established", since) is not None


def _str(v: Any) -> str | None:
    return str(v) if v not in (None, "") else None


__all__ = ["Item", "Outbox", "wire_dict"]


def wire_dict(item: Item) -> dict[str, Any]:
    """The event's wire JSON as a dict (Call Events need its fields)."""
    doc: dict[str, Any] = orjson.loads(item.wire)
    return doc
