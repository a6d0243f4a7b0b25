"""The correlator: phone reports in, canonical events out, with sessions, CDRs and presence.

Pure: no I/O, time from the injected clock. The pipeline appends what `feed`, `publish` and
`tick` return to the event log, and persists `drain_changes()` in the same transaction, so
`restore()` after a restart continues every open call under its session_id and cdr_id.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from callhook.correlate import bodies, parties, published
from callhook.correlate.bodies import TenantView
from callhook.correlate.calls import CallFlow
from callhook.correlate.dedup import Dedup
from callhook.correlate.endings import Endings
from callhook.correlate.presence import PresenceBook
from callhook.correlate.sessions import SessionTable
from callhook.correlate.state import RINGING, Changes, CorrelationSettings, Session
from callhook.directory import Tenant
from callhook.events import Event, unix_time
from callhook.ingest.model import PhoneEvent
from callhook.normalise import (
    CallReport,
    DeviceReport,
    normalise,
    snom_direction_unknown,
    swap_parties,
)

log = logging.getLogger(__name__)

# The end_reason of a call ended with POST .../calls/{session_id}/end.
ENDED_BY_API = "ended_by_api"

# The hint on a report stored raw because correlating it failed (Correlator.raw_report).
CORRELATION_FAILED = "correlation-failed"


class InjectedFault(RuntimeError):
    """The fault `[testing] correlator_fault` asks for: a real exception in the real process,
    for the tests of what the hub does when correlation fails."""


# Device events whose repeats are told apart by state (presence), not by the dedup memory:
# a Registration after a Sign Off is news however soon it comes.
_MAX_SNOM_PHONES = 100_000
_STATEFUL = frozenset(
    {"dnd_on", "dnd_off", "forward_on", "forward_off", "off_hook", "on_hook", "extension_register"}
)


class Correlator:
    """Merges phones' reports into sessions; emits lifecycle events once, CDRs, presence."""

    def __init__(
        self,
        tenant_lookup: Callable[[str], Tenant | None],
        settings: CorrelationSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._lookup = tenant_lookup
        self.settings = settings
        self._clock = clock
        self._views: dict[str, TenantView] = {}
        # Changed sessions to persist; None: forgotten, its state is deleted.
        self._dirty: dict[tuple[str, str], Session | None] = {}
        self._table = SessionTable(settings, self._forgot)
        self._presence = PresenceBook(settings)
        self._end = Endings(settings, self._table, self._presence, self._mark)
        self._flow = CallFlow(settings, self._table, self._presence, self._end, self._mark)
        self._dedup = Dedup(settings.dedup_window, settings.max_dedup_entries)
        self._snom_macs: dict[tuple[str, str], str] = {}  # Snom phone (tenant, MAC) -> number

    # -- the pipeline's calls ----------------------------------------------------------------
    def feed(self, pe: PhoneEvent) -> list[Event]:
        """Canonical events for one phone report, in order. An exception here is a bug the
        caller must not swallow: the pipeline stores the report with `raw_report` instead."""
        now = self._clock()
        if self._table.closed_before(now - self.settings.dedup_window):
            self._table.purge(now)
        tv = self._view(pe.tenant)
        rep = normalise(pe, now)
        if self.settings.fault_event and pe.event == self.settings.fault_event:
            raise InjectedFault(f"injected correlator fault on {pe.event}")
        if isinstance(rep, CallReport):
            if pe.vendor == "snom":
                self._snom_phone(tv, pe, rep)
            if rep.own:
                self._presence.seen(tv.name, rep.own, rep.event, rep.variables, now)
            return _with_phone(self._flow.apply(tv, rep, now), pe)
        if pe.vendor == "snom" and rep.own and "mac" in pe.variables:
            _bounded_set(self._snom_macs, (tv.name, pe.variables["mac"]), rep.own)
        if self._repeat(tv.name, rep, pe, now):
            return []
        return _with_phone(self._presence.apply_device(tv, rep, now), pe)

    def _snom_phone(self, tv: TenantView, pe: PhoneEvent, rep: CallReport) -> None:
        """Settle which of a Snom report's numbers is the phone (its `$local` is the callee):
        the number its call id's leg has, else the number its MAC reported, else the one of
        the two that is the tenant's extension."""
        mac = pe.variables.get("mac", "")
        if not snom_direction_unknown(pe, rep):
            if mac and rep.own:
                _bounded_set(self._snom_macs, (tv.name, mac), rep.own)
            return
        phone = ""
        s = self._table.by_call.get((tv.name, rep.call_id)) if rep.call_id else None
        if s is not None:
            mine = {leg.number for leg in s.legs.values() if leg.call_id == rep.call_id}
            phone = rep.own if rep.own in mine else rep.remote if rep.remote in mine else ""
        if not phone and mac:
            phone = self._snom_macs.get((tv.name, mac), "")
        if not phone and not tv.is_extension(rep.own) and tv.is_extension(rep.remote):
            phone = rep.remote
        if phone and phone == rep.remote and phone != rep.own:
            swap_parties(rep)

    def _repeat(self, tenant: str, rep: DeviceReport, pe: PhoneEvent, now: float) -> bool:
        if rep.key in _STATEFUL and rep.own:
            return False  # presence compares it with the current state
        if rep.key == "action_url":
            return False  # an unrecognised event is stored raw, never dropped
        # A hash, not the pairs themselves: the memory stays small whatever phones send.
        # The same report from another address is another phone's, not a repeat.
        key = hash(
            (
                tenant,
                pe.source_ip,
                pe.event,
                pe.event_name,
                tuple(sorted(pe.variables.items())),
                tuple(sorted(pe.pairs.items())),
            )
        )
        return self._dedup.repeat(key, now)

    def raw_report(self, pe: PhoneEvent, failure: str) -> Event:
        """A report `feed` failed on, kept as `device_events/action_url`: its event name,
        pairs and variables as sent, with the hint `correlation-failed` and the error."""
        now = self._clock()
        body: dict[str, Any] = {
            "event_type": "action_url",
            "tenant_name": pe.tenant,
            "time": unix_time(now),
        }
        with contextlib.suppress(Exception):  # the tenant's view may be what failed
            body = self._view(pe.tenant).base("action_url", now)
        own = pe.variables.get("active_user") or pe.variables.get("local", "")
        body.update(
            {
                "event_name": pe.event_name or pe.event or "",
                "event": pe.event or "",
                "pairs": dict(pe.pairs),
                "variables": dict(pe.variables),
                "hints": [*pe.hints, CORRELATION_FAILED],
                "error": failure[:500],
                "vendor": pe.vendor,
                "source_ip": pe.source_ip,
            }
        )
        return Event(
            tenant=pe.tenant, key="action_url", body=body, extensions=(own,) if own else ()
        )

    def publish(self, ev: Event) -> list[Event]:
        """A canonical event published by a PBX. Call events are correlated like phones'
        reports (their session, presence and CDR are the hub's); the others update presence
        and are passed on as they are."""
        call = published.read(ev.key, ev.body)
        if call is not None:
            try:
                return self._publish_call(ev, call)
            except Exception:  # a bug must not lose the stream: pass the event on as it is
                log.exception("correlating published %s failed", ev.key)
                return [ev]
        try:
            self._presence.apply_published(ev, self._clock())
        except Exception:
            log.exception("presence update failed for published %s", ev.key)
        return [ev]

    def _publish_call(self, ev: Event, call: published.PublishedCall) -> list[Event]:
        now = self._clock()
        tv = self._view(ev.tenant)
        out: list[Event] = []
        for rep in call.reports:
            out.extend(self._flow.apply(tv, rep, now))
            s = self._table.by_call.get((tv.name, rep.call_id)) if rep.call_id else None
            leg = s.legs.get(rep.phone) if s is not None else None
            if leg is not None and leg.answers is None:
                leg.answers = True  # the PBX reports answers: its silence means none yet
        s = self._table.by_call.get((tv.name, call.call_id)) if call.call_id else None
        if s is not None and call.hosts:
            self._outside_hosts(s, tv, call.hosts, out)
        if call.close and s is not None and not s.closed:
            if call.fail_code is not None and s.answer_time is None:
                s.fail_code = call.fail_code
            self._end.close(s, tv, now, call.close, out)
        extra = {k: v for k, v in ev.body.items() if k not in published.OWN_FIELDS}
        if extra:
            for e in out:
                if e.key == ev.key:
                    e.body = {**extra, **e.body}
        return out

    def _outside_hosts(
        self, s: Session, tv: TenantView, hosts: tuple[tuple[str, str], ...], out: list[Event]
    ) -> None:
        """Write outside parties with the host the PBX gave them (its trunk's domain), from
        now on and in the events just made; extensions keep the tenant's domain."""
        new = {
            n: h
            for n, h in hosts
            if n not in s.hosts and not tv.is_extension(n) and len(s.hosts) < published.MAX_HOSTS
        }
        if not new:
            return
        s.hosts.update(new)
        bodies.render_parties(s, tv)
        rewrite = {tv.uri(n): f"sip:{n}@{h}" for n, h in new.items()}
        for e in out:
            for name in bodies.ADDRESS_FIELDS:
                value = e.body.get(name)
                if isinstance(value, str) and value in rewrite:
                    e.body[name] = rewrite[value]
        self._mark(s)

    def tick(self) -> list[Event]:
        """Close sessions whose deadline passed: ringing nobody answered, idle calls,
        transfers whose target never showed up."""
        now = self._clock()
        out: list[Event] = []
        if self._flow.held:
            try:
                out.extend(self._flow.release_held(self._view, now))
            except Exception:
                log.exception("releasing held rings failed")
        for s in self._table.due(now):
            try:
                out.extend(self._end.expire(s, self._view(s.tenant), now))
            except Exception:
                log.exception("closing session %s failed", s.session_id)
        self._table.purge(now)
        return out

    def end_call(self, tenant: str, session_id: str) -> list[Event] | None:
        """End an open call by hand (a stuck one): what its end emits, as if every phone hung
        up now (ringing phones get `target_noanswer`, then the closing event and the CDR),
        with end_reason "ended_by_api". None when no such call is open."""
        s = self._table.open.get(tenant, {}).get(session_id)
        if s is None:
            return None
        out: list[Event] = []
        self._end.close(s, self._view(tenant), self._clock(), ENDED_BY_API, out)
        return out

    def has_changes(self) -> bool:
        """Whether drain_changes() would return anything."""
        return bool(self._dirty) or self._presence.has_changes()

    def drain_changes(self) -> Changes:
        """Sessions and presence changed since the last drain. A closed session is kept
        while late reports of it are recognised (dedup_window), then it is None (deleted)."""
        sessions = [
            (t, sid, None if s is None else s.to_dict()) for (t, sid), s in self._dirty.items()
        ]
        self._dirty.clear()
        return Changes(sessions=sessions, presence=self._presence.drain())

    def restore(
        self, sessions: Iterable[dict[str, Any]], presence: Iterable[dict[str, Any]]
    ) -> None:
        """Rebuild from what drain_changes() gave (presence first, then calls). Calls closed
        within dedup_window are remembered again, so that their late reports stay dropped;
        older ones are forgotten (their state is deleted at the next drain)."""
        for d in presence:
            try:
                self._presence.restore(d)
            except (KeyError, TypeError, ValueError):
                log.warning("skipping unreadable presence state %r", d)
        horizon = self._clock() - self.settings.dedup_window
        closed: list[Session] = []
        open_: list[Session] = []
        for d in sessions:
            try:
                s = Session.from_dict(d)
            except (KeyError, TypeError, ValueError):
                log.warning("skipping unreadable session state %r", d)
                continue
            if not s.closed:
                open_.append(s)
            elif s.closed_at >= horizon:
                closed.append(s)
            else:
                self._dirty[(s.tenant, s.session_id)] = None
        # Closed calls first, oldest first: the memory is in closing order, and a phone's
        # open call must win the index over its finished one.
        for s in sorted(closed, key=lambda s: s.closed_at):
            self._index(s)
            self._table.retire(s, s.closed_at)  # bounded by max_closed_sessions
        for s in open_:
            if s.session_id in self._table.open.get(s.tenant, {}):
                continue
            self._table.add(s)
            parties.refresh_extensions(s, self._view(s.tenant))
            self._index(s)
            self._table.schedule(s, self._end.deadline(s))
            for n in s.extensions:
                self._presence.set_call(s.tenant, n, s.session_id, False)
            ringing = {leg.number for leg in s.legs.values() if leg.state == RINGING}
            for n in ringing & set(s.extensions):
                self._presence.set_call(s.tenant, n, s.session_id, True)
        for s in [*open_, *closed]:
            for d in s.held:  # rings held back for it: held again, released by tick
                try:
                    rep = CallReport(**d["report"])
                    self._flow.held.remember(s.tenant, rep, float(d["at"]), s)
                except (KeyError, TypeError, ValueError):
                    log.warning("skipping unreadable held ring %r", d)
        self._presence.dirty.clear()

    def _index(self, s: Session) -> None:
        for leg in s.legs.values():
            self._table.index_leg(s, leg)
        if s.view:
            self._table.index_caller(s, s.caller)
        for target in s.transfer_targets:
            self._table.index_transfer(s, target)

    def keep_tenants(self, names: Iterable[str]) -> None:
        """Forget every tenant not in `names` (deleted): its calls and presence go without a
        word, so that a new tenant of the same name starts empty (its stored state is purged)."""
        keep = set(names)
        for tenant in (self._table.tenants() | self._presence.tenants()) - keep:
            self._table.drop_tenant(tenant)
            self._presence.drop_tenant(tenant)
        self._dirty = {k: s for k, s in self._dirty.items() if k[0] in keep}
        self._views = {k: v for k, v in self._views.items() if k in keep}
        for key in [key for key in self._snom_macs if key[0] not in keep]:
            del self._snom_macs[key]

    def presence(self, tenant: str, extension: str) -> dict[str, Any]:
        """Current presence of one extension (JSON-able)."""
        return self._presence.state(tenant, extension)

    def reported_extensions(self, tenant: str) -> list[str]:
        """Extensions of `tenant` that phones reported, declared or not."""
        return self._presence.numbers(tenant)

    def active_calls(self, tenant: str) -> list[dict[str, Any]]:
        """Open sessions of `tenant`, oldest first (JSON-able)."""
        tv = self._view(tenant)
        return [self._call_view(s, tv) for s in self._table.open.get(tenant, {}).values()]

    # -- helpers -----------------------------------------------------------------------------
    def _call_view(self, s: Session, tv: TenantView) -> dict[str, Any]:
        def stamp(t: float | None) -> str:
            return unix_time(t) if t is not None else ""

        def party(n: str) -> str:
            return bodies.party(s, tv, n)

        return {
            "session_id": s.session_id,
            "cdr_id": s.cdr_id,
            "call_id": s.call_id,
            "caller": party(s.caller),
            "callee": party(s.callee),
            "caller_display_name": s.caller_display_name,
            "direction": s.direction,
            "state": s.state(),
            "start_time": stamp(s.start_time),
            "answer_time": stamp(s.answer_time),
            "call_target": party(s.answered_by),
            "extensions": list(s.extensions),
            "caller_number": s.caller,
            "callee_number": s.callee,
        }

    def _view(self, name: str) -> TenantView:
        tenant = self._lookup(name)
        tv = self._views.get(name)
        if tv is None or tv.tenant is not tenant:
            tv = self._views[name] = TenantView.of(name, tenant, self._presence.known)
        return tv

    def _mark(self, s: Session) -> None:
        key = (s.tenant, s.session_id)
        if self._dirty.get(key, s) is not None:  # a forgotten session's state stays deleted
            self._dirty[key] = s

    def _forgot(self, s: Session) -> None:
        self._dirty[(s.tenant, s.session_id)] = None

    @property
    def open_sessions(self) -> int:
        return len(self._table)


def _with_phone(events: list[Event], pe: PhoneEvent) -> list[Event]:
    """Every variable the phone sent stays on what its report produced, as `phone`
    (canonical names: `call_id`, `active_host`, `calldirection`, ...), so nothing a phone
    URL asks for is dropped."""
    phone = pe.variables  # read, never changed (ParsedRequest): shared, not copied
    if phone:
        for e in events:
            e.body["phone"] = phone
    return events


def _bounded_set(memory: dict[tuple[str, str], str], key: tuple[str, str], value: str) -> None:
    if memory.get(key) != value:
        memory.pop(key, None)
        if len(memory) >= _MAX_SNOM_PHONES:
            del memory[next(iter(memory))]  # oldest first: bounded under any input
        memory[key] = value
