"""Who a call is between, remembered per session for the Call Events requests of later events.

Seed 003 wants the same default parameters on every request of a call (`CallerIDNum`,
`CallerIDNam`, `CalledExtension`, `CallFlow`, ...), but the canonical bodies (PortSIP's
shapes) do not all say them: `call_established` / `call_ended` have no `direction` nor
`caller_display_name`, `call_hold` not even `caller` / `callee`. The outbox sees every
event in log order on the writer thread, so it notes what each event says here and writes
what a later event lacks into that delivery's durable `context`: retries, redeliveries and
restarts then build the same request. Bounded: least recently seen sessions are forgotten
(the outbox then asks the event log).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

# The body fields a Call Events request is built from that not every event carries.
FIELDS: tuple[str, ...] = ("caller", "callee", "direction", "caller_display_name", "did")


class Parties:
    """session_id -> the call's parties as the latest event that said them wrote them."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        # fields in FIELDS order; `whole`: the call's start was seen (here or in the log)
        self._calls: OrderedDict[str, tuple[tuple[str, ...], bool]] = OrderedDict()

    def note(self, session_id: str, body: Mapping[str, Any], *, start: bool = False) -> None:
        """Remember what this body says; what it says wins over what was known."""
        # Every event of a call passes here on the writer thread: FIELDS spelled out.
        get = body.get
        said = (
            _text(get("caller")),
            _text(get("callee")),
            _text(get("direction")),
            _text(get("caller_display_name")),
            _text(get("did")),
        )
        known = self._calls.get(session_id)
        if known is not None and (said == known[0] or not any(said)):
            # Nothing new said (a body saying none of them, or the same ones again).
            if start and not known[1]:
                self._calls[session_id] = (known[0], True)
            self._calls.move_to_end(session_id)
            return
        self._merge(session_id, said, start, newer=True)

    def recall(self, session_id: str, start_body: Mapping[str, Any] | None) -> None:
        """The call's start as the event log has it (older: it fills only what is unknown)."""
        said = tuple(_text((start_body or {}).get(f)) for f in FIELDS)
        self._merge(session_id, said, True, newer=False)

    def whole(self, session_id: str) -> bool:
        """Whether the call's start is known (else: ask the log once, then `recall`)."""
        known = self._calls.get(session_id)
        return known is not None and known[1]

    def missing(self, session_id: str, body: Mapping[str, Any]) -> dict[str, str]:
        """What is known of the call that this body does not say itself."""
        known = self._calls.get(session_id)
        if known is None:
            return {}
        return {f: v for f, v in zip(FIELDS, known[0], strict=True) if v and not body.get(f)}

    def entry(self, session_id: str) -> tuple[tuple[str, ...], bool] | None:
        """What is known of a session, as `put` takes it back (undo of a rolled-back write)."""
        return self._calls.get(session_id)

    def put(self, session_id: str, entry: tuple[tuple[str, ...], bool] | None) -> None:
        if entry is None:
            self._calls.pop(session_id, None)
        else:
            self._calls[session_id] = entry

    def _merge(self, session_id: str, said: tuple[str, ...], start: bool, newer: bool) -> None:
        known = self._calls.get(session_id)
        if known is None:
            merged, whole = said, start
        else:
            pairs = zip(said, known[0], strict=True)
            merged = tuple((s or k) if newer else (k or s) for s, k in pairs)
            whole = start or known[1]
        self._calls[session_id] = (merged, whole)
        self._calls.move_to_end(session_id)
        if len(self._calls) > self.limit:
            self._calls.popitem(last=False)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else ""
