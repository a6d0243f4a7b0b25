"""The session table: which session a phone's report belongs to, timers, and closed calls.

Every lookup is a dict access on the report's own keys (call id, the phone's current call,
the number pair of an internal call, a ringing call's caller, a transfer target), never a
scan. Deadlines live in a lazy heap. Closed sessions stay findable for `dedup_window`: late
or repeated reports of a finished call are recognised, not taken for a new one.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from callhook.correlate.state import DIALING, RINGING, CorrelationSettings, Leg, Session
from callhook.normalise import CallReport

_K = TypeVar("_K")
_MAX_PER_KEY = 8  # sessions remembered per pair/caller key; older ones just stop merging
_has_digit = re.compile(r"\d").search
_NOT_A_NUMBER = frozenset({"anonymous", "unknown", "private", "restricted", "unavailable"})


def _compatible(a: str, b: str) -> bool:
    """Two legs can be the two ends of one call unless both say they called (or were called)."""
    return not a or not b or a != b


def mergeable_caller(number: str) -> bool:
    """Withheld numbers are shared by unrelated callers; never merge ring legs on them."""
    return _has_digit(number) is not None and number.lower() not in _NOT_A_NUMBER


class SessionTable:
    """Open and recently closed sessions, with the indexes that route reports to them."""

    def __init__(
        self, settings: CorrelationSettings, forgot: Callable[[Session], None] = lambda s: None
    ) -> None:
        self.settings = settings
        self._forgot = forgot  # told when a closed session leaves the memory (its state goes)
        self.by_call: dict[tuple[str, str], Session] = {}
        self.by_phone: dict[tuple[str, str], Session] = {}
        self.by_pair: dict[tuple[str, str, str], list[Session]] = {}
        self.by_caller: dict[tuple[str, str], list[Session]] = {}
        self.by_transfer: dict[tuple[str, str], Session] = {}
        self.open: dict[str, dict[str, Session]] = {}  # tenant -> id -> session, oldest first
        self._heap: list[tuple[float, int, Session]] = []
        self._tiebreak = itertools.count()
        self._closed: deque[Session] = deque()
        self._open_count = 0

    # -- finding a report's session ------------------------------------------------------
    def find(self, tenant: str, rep: CallReport, now: float) -> Session | None:
        """The session `rep` belongs to (possibly closed: then it is a late report), or None."""
        if rep.call_id:
            s = self.by_call.get((tenant, rep.call_id))
            if s is not None:
                return s
        s = self.by_phone.get((tenant, rep.phone))
        if s is not None and self._same_call(s, rep, now):
            return s
        if not rep.own or rep.phase == "transfer":
            return None  # a transfer's remote is its target: no pair to match on
        return (
            self._transfer_match(tenant, rep, now)
            or self._pair_match(tenant, rep, now)
            or self._ring_match(tenant, rep, now)
        )

    def _same_call(self, s: Session, rep: CallReport, now: float) -> bool:
        """Is `rep` (no known call id) about `s`, the latest call of the phone?
        Without call ids, a phone's next call looks like its last. A start already sent is a
        repeat while it rings or within merge_window, else a new call; one not sent is late.
        After close: within merge_window, an unreported phase or the same end (same talk
        time) is a late report; the rest is the next call.
        """
        leg = s.legs.get(rep.phone)
        if leg is None or (rep.call_id and leg.call_id):
            return False
        if leg.remote and rep.remote and leg.remote != rep.remote and rep.phase != "transfer":
            return False
        window = self.settings.merge_window
        if rep.phase in ("ring", "dial"):
            if rep.phase in leg.phases and rep.remote != leg.remote:
                return False  # a second start naming another party (or one at all): a new call
            if rep.phase not in leg.phases:
                return not s.closed or now - s.closed_at <= window
            ringing = not s.closed and leg.state in (RINGING, DIALING)
            return ringing or now - leg.since <= window
        if s.closed:
            if now - s.closed_at <= window or rep.phase not in leg.phases:
                return True
            return rep.phase in ("hangup", "missed") and (rep.duration or 0) == (leg.duration or 0)
        return True

    def _transfer_match(self, tenant: str, rep: CallReport, now: float) -> Session | None:
        s = self.by_transfer.get((tenant, rep.own))
        if s is None or s.closed or rep.role == "caller" or rep.phone in s.legs:
            return None
        # The target rings just after the transfer; the window restarts at the transferor's end.
        waiting = s.wait_until is not None and s.wait_reason == "transferred"
        since = s.hangup_at if waiting and s.hangup_at is not None else s.last_activity
        return s if now - since <= self.settings.merge_window else None

    def _pair_match(self, tenant: str, rep: CallReport, now: float) -> Session | None:
        """The other end of an internal call: a leg of phone `remote` whose remote is us. Its
        start must come within merge_window of the call's; a later report of a phone whose
        start was lost joins while the call is open, or for dedup_window after it closed."""
        if not rep.remote or rep.remote == rep.own:
            return None
        a, b = (rep.own, rep.remote) if rep.own < rep.remote else (rep.remote, rep.own)
        start = rep.phase in ("ring", "dial")
        for s in reversed(self.by_pair.get((tenant, a, b), ())):
            if rep.phone in s.legs:
                continue
            if s.closed and now - s.closed_at > self.settings.dedup_window:
                continue
            if start and not s.closed and now - s.created_at > self.settings.merge_window:
                continue
            other = s.legs.get(rep.remote)
            if other is not None and other.remote == rep.own and _compatible(other.role, rep.role):
                return s
        return None

    def _ring_match(self, tenant: str, rep: CallReport, now: float) -> Session | None:
        """A ring group: one caller ringing several phones, whose reports carry different
        call ids. Joins a session of the same caller (never a withheld number):
        - a called phone ringing within merge_window of the call's start;
        - a called phone's later report (Missed after a CANCEL, an answer whose ring was
          lost) while it rings, or within merge_window of its answer or end;
        - the caller's own Outgoing Call when the called side reported first.
        Open sessions first; a closed one only between the same parties (not a redial).
        """
        if rep.role == "caller":
            return self._caller_match(tenant, rep, now)
        caller = rep.remote
        if not caller or not mergeable_caller(caller):
            return None
        window = self.settings.merge_window
        late: Session | None = None  # open sessions first: a closed one only if nothing else
        for s in reversed(self.by_caller.get((tenant, caller), ())):
            if rep.phone in s.legs or s.caller == rep.own:
                continue
            if s.closed:  # late, unless the caller's phone said it called someone else
                if late is None and now - s.closed_at <= window:
                    late = s if s.may_include(rep.own, s.view) else None
                continue
            if rep.phase == "ring":
                near = now - s.created_at <= window
            elif s.answer_time is not None:
                near = now - s.answer_time <= window
            else:
                near = True
            if near:
                return s
        return late

    def _caller_match(self, tenant: str, rep: CallReport, now: float) -> Session | None:
        window = self.settings.merge_window
        late: Session | None = None
        for s in reversed(self.by_caller.get((tenant, rep.own), ())):
            if rep.phone in s.legs or any(leg.role == "caller" for leg in s.legs.values()):
                continue
            if s.closed:
                if late is None and now - s.closed_at <= window and s.may_include(rep.remote, 2):
                    late = s
            elif now - s.created_at <= window:
                return s
        return late

    # -- indexing --------------------------------------------------------------------------
    def add(self, s: Session) -> None:
        """Register a new (or restored) open session."""
        self.open.setdefault(s.tenant, {})[s.session_id] = s
        self._open_count += 1

    def index_leg(self, s: Session, leg: Leg) -> None:
        """Make `leg`'s call id, phone and number pair lead to `s`."""
        t = s.tenant
        if leg.call_id and leg.call_id not in s.idx_calls:
            self.by_call[(t, leg.call_id)] = s
            s.idx_calls.append(leg.call_id)
        self.by_phone[(t, leg.phone)] = s
        if leg.phone not in s.idx_phones:
            s.idx_phones.append(leg.phone)
        if leg.number and leg.remote and leg.number != leg.remote:
            a, b = sorted((leg.number, leg.remote))
            if (a, b) not in s.idx_pairs:
                s.idx_pairs.append((a, b))
                _push(self.by_pair.setdefault((t, a, b), []), s)

    def index_caller(self, s: Session, caller: str) -> None:
        """Let other phones called by `caller` join `s` (ring group). A session whose
        direction is a guess is indexed under both numbers (at most two keys)."""
        if caller in s.idx_callers or len(s.idx_callers) >= 2 or not mergeable_caller(caller):
            return
        s.idx_callers.append(caller)
        _push(self.by_caller.setdefault((s.tenant, caller), []), s)

    def index_transfer(self, s: Session, target: str) -> None:
        self.by_transfer[(s.tenant, target)] = s
        if target not in s.transfer_targets:
            s.transfer_targets.append(target)

    # -- timers ----------------------------------------------------------------------------
    def schedule(self, s: Session, deadline: float) -> None:
        """Set `s`'s deadline; only an earlier one needs a new heap entry (lazy heap)."""
        s.deadline = deadline
        if deadline < s.heap_at:
            s.heap_at = deadline
            heapq.heappush(self._heap, (deadline, next(self._tiebreak), s))
            if len(self._heap) > 2 * self._open_count + 1024:
                self._compact()

    def due(self, now: float) -> list[Session]:
        """Open sessions whose deadline has passed."""
        out: list[Session] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, s = heapq.heappop(heap)
            if s.closed or at != s.heap_at:
                continue  # stale entry
            if s.deadline <= now:
                s.heap_at = math.inf
                out.append(s)
            else:
                s.heap_at = s.deadline
                heapq.heappush(heap, (s.deadline, next(self._tiebreak), s))
        return out

    def _compact(self) -> None:
        """Closed sessions leave heap entries behind: rebuild from the open ones before they
        outnumber them (amortised O(1) per session)."""
        live = [s for by_id in self.open.values() for s in by_id.values() if s.heap_at < math.inf]
        self._heap = [(s.heap_at, next(self._tiebreak), s) for s in live]
        heapq.heapify(self._heap)

    # -- closing and forgetting ----------------------------------------------------------------
    def oldest(self, tenant: str) -> Session | None:
        by_id = self.open.get(tenant)
        return next(iter(by_id.values())) if by_id else None

    def count(self, tenant: str) -> int:
        by_id = self.open.get(tenant)
        return len(by_id) if by_id else 0

    def retire(self, s: Session, now: float) -> None:
        """`s` has closed: keep it findable for dedup_window, then forget it."""
        by_id = self.open.get(s.tenant)
        if by_id is not None and by_id.pop(s.session_id, None) is not None:
            self._open_count -= 1
            if not by_id:
                del self.open[s.tenant]
        s.closed_at = now
        self._closed.append(s)
        if len(self._closed) > self.settings.max_closed_sessions:
            self._forget(self._closed.popleft())

    def closed_before(self, t: float) -> bool:
        """Is a closed session older than `t` waiting to be forgotten? (cheap check)"""
        return bool(self._closed) and self._closed[0].closed_at < t

    def purge(self, now: float) -> None:
        """Forget closed sessions older than dedup_window (they close in time order)."""
        horizon = now - self.settings.dedup_window
        closed = self._closed
        while closed and closed[0].closed_at < horizon:
            self._forget(closed.popleft())

    def drop_tenant(self, tenant: str) -> None:
        """A deleted tenant: forget its sessions, open and closed, without closing them."""
        for s in self.open.pop(tenant, {}).values():
            self._open_count -= 1
            s.closed = True  # its heap entries are stale from now on
            self._forget(s)
        if any(s.tenant == tenant for s in self._closed):
            kept: deque[Session] = deque()
            for s in self._closed:
                if s.tenant == tenant:
                    self._forget(s)
                else:
                    kept.append(s)
            self._closed = kept

    def tenants(self) -> set[str]:
        return set(self.open) | {s.tenant for s in self._closed}

    def _forget(self, s: Session) -> None:
        t = s.tenant
        for cid in s.idx_calls:
            if self.by_call.get((t, cid)) is s:
                del self.by_call[(t, cid)]
        for phone in s.idx_phones:
            if self.by_phone.get((t, phone)) is s:
                del self.by_phone[(t, phone)]
        for a, b in s.idx_pairs:
            _drop(self.by_pair, (t, a, b), s)
        for caller in s.idx_callers:
            _drop(self.by_caller, (t, caller), s)
        for target in s.transfer_targets:
            if self.by_transfer.get((t, target)) is s:
                del self.by_transfer[(t, target)]
        self._forgot(s)

    def __len__(self) -> int:
        return self._open_count


def _push(bucket: list[Session], s: Session) -> None:
    bucket.append(s)
    if len(bucket) > _MAX_PER_KEY:
        del bucket[0]


def _drop(index: dict[_K, list[Session]], key: _K, s: Session) -> None:
    bucket = index.get(key)
    if bucket is not None and s in bucket:  # sessions compare by identity
        bucket.remove(s)
        if not bucket:
            del index[key]
