"""accept(raw) -> normalise -> correlate -> append -> publish, in a few lines.

Correlation runs on the event loop, one step at a time. What the steps of one loop iteration
produce is gathered into one batch and queued to the single writer once, so `seq` order is
correlation order, each changed session or extension is persisted once per batch (not once
per event), and a burst of phone requests costs one queue hand-off. The response to a phone
is sent only after the batch's transaction committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from callhook.correlate import Correlator
from callhook.directory import Tenant
from callhook.events import Event
from callhook.ingest.model import ParsedRequest, PhoneEvent
from callhook.store import Append, Appended, EventLog, StoreError
from callhook.store.records import DeviceSeen

log = logging.getLogger("callhook.pipeline")


def device_of(tenant: Tenant, pe: PhoneEvent) -> DeviceSeen | None:
    """The phone behind a request, when it told us its MAC."""
    v = pe.variables
    mac = v.get("mac")
    if not mac:
        return None
    return DeviceSeen(
        tenant=tenant.name,
        mac=mac,
        vendor=pe.vendor,
        model=v.get("product", ""),
        firmware=v.get("program_version", ""),
        hardware=v.get("hardware_version", ""),
        ip=v.get("phone_ip") or pe.source_ip,
        extension=v.get("active_user") or v.get("local", "") if pe.event != "sign_off" else "",
        last_event=pe.event or pe.event_name or "",
        seen_at=pe.received_at,
        details=_details(v),
    )


# Variables that describe the phone beyond model, firmware, hardware and address.
DEVICE_DETAILS = ("language", "active_user", "active_host", "display_local")
# Every variable device_of() reads: the same values give the same row.
_DEVICE_VARIABLES = ("product", "program_version", "hardware_version", "phone_ip", "local",
                     *DEVICE_DETAILS)  # fmt: skip


def _details(v: dict[str, str]) -> str:
    found = {k: v[k][:256] for k in DEVICE_DETAILS if k in v}
    return orjson.dumps(found).decode() if found else "{}"


# A phone's device row is rewritten when what it says changes, else at most this often: its
# `last_seen` and `last_event` are exact to a minute, and ingest does not pay an UPSERT per request.
DEVICE_REFRESH_SECONDS = 60.0
MAX_DEVICE_CACHE = 100_000


class DeviceCache:
    """What was written of each phone's device row: a row is written again when what the
    phone says changes, else at most every DEVICE_REFRESH_SECONDS."""

    def __init__(self) -> None:
        # (tenant, mac) -> (what the phone said of itself, when its row was written)
        self._devices: dict[tuple[str, str], tuple[tuple[Any, ...], float]] = {}

    def seen(self, tenant: Tenant, pe: PhoneEvent) -> DeviceSeen | None:
        """device_of(tenant, pe) if its row is to be written now, else None. Checked on
        what the request says, so most requests build no row."""
        v = pe.variables
        mac = v.get("mac")
        if not mac:
            return None
        key = (tenant.name, mac)
        said = (pe.vendor, pe.source_ip, pe.event != "sign_off",
                *[v.get(k) for k in _DEVICE_VARIABLES])  # fmt: skip
        known = self._devices.get(key)
        if (
            known is not None
            and known[0] == said
            and pe.received_at - known[1] < DEVICE_REFRESH_SECONDS
        ):
            return None
        if len(self._devices) >= MAX_DEVICE_CACHE:
            self._devices.clear()
        self._devices[key] = (said, pe.received_at)
        return device_of(tenant, pe)

    def forget(self, d: DeviceSeen) -> None:
        """Its row was not written after all: write it with the next report."""
        self._devices.pop((d.tenant, d.mac), None)


def mark(events: list[Event], marks: Marks | None) -> list[Event]:
    """Fields a report's source adds to every event it caused (a Kamailio report's
    `source` and `report_id`; `talk_seconds` on its `call_cdr`)."""
    if marks:
        fields, talk_seconds = marks
        for e in events:
            e.body.update(fields)
            if e.key == "call_cdr" and talk_seconds is not None:
                e.body["talk_seconds"] = talk_seconds
    return events


# (fields added to every event, `talk_seconds` for the call's CDR or None)
Marks = tuple[dict[str, Any], float | None]


@dataclass(slots=True)  # not frozen: one per request (frozen init is several times slower)
class Queued:
    """One request's events, queued for commit: `done` completes after its batch's COMMIT."""

    done: asyncio.Future[Appended]
    part: int  # this request's part of the batch

    def committed(self) -> tuple[Event, ...] | None:
        """Its events as stored (with `seq` and `event_id`), or None if they were not."""
        d = self.done
        if not d.done() or d.cancelled() or d.exception() is not None:
            return None
        return d.result().part(self.part)


class Pending(Protocol):
    """A report handed over: answer once `done` completes."""

    @property
    def done(self) -> asyncio.Future[Any]: ...

    def committed(self) -> tuple[Event, ...] | None:
        """Once done: the events stored for it (empty when they are correlated later, by a
        cluster's owner), or None when it was not stored (answer 503)."""
        ...


class Intake(Protocol):
    """What phone ingest, the REST API and Kamailio hand reports to: `Pipeline` below on
    one node; a cluster's inbox (callhook/cluster/intake.py) on several."""

    # Whether `Pending.committed()` gives the events (else: stored, correlated later).
    answers_with_events: bool

    def accept(
        self,
        tenant: Tenant,
        parsed: ParsedRequest,
        source_ip: str,
        marks: Marks | None = None,
        dedupe: str = "",
    ) -> tuple[list[Event], Pending]: ...

    async def publish(self, event: Event, dedupe: str = "") -> tuple[Event, ...]: ...

    async def end_call(self, tenant: str, session_id: str) -> tuple[Event, ...] | None: ...


class Pipeline:
    """Turns phone reports and published events into committed canonical events."""

    def __init__(
        self,
        log: EventLog,
        correlator: Correlator,
        correlation_failed: Callable[[str], None] = lambda tenant: None,
    ) -> None:
        self.log = log
        self.correlator = correlator
        self._correlation_failed = correlation_failed  # counts them (a metric), by tenant
        self.devices = DeviceCache()
        self._batch: Append | None = None  # gathering during this loop iteration
        self._batch_done: asyncio.Future[Appended] | None = None

    # The answer to a phone names the events its report caused (ingest/routes.py).
    answers_with_events = True

    def accept(
        self,
        tenant: Tenant,
        parsed: ParsedRequest,
        source_ip: str,
        marks: Marks | None = None,
        dedupe: str = "",
    ) -> tuple[list[Event], Queued]:
        """Correlate one phone request now; its events are durable when `Queued.done` is.

        `Queued.committed()` then gives them as stored (with `seq` and `event_id`), or None
        when they could not be written (answer 503). `dedupe` (a Kamailio report's id) is
        for a cluster's inbox; one node recognises repeats itself (kamailio/seen.py).
        """
        pe = PhoneEvent(
            tenant=tenant.name,
            event=parsed.event,
            variables=parsed.variables,
            pairs=parsed.pairs,
            event_name=parsed.event_name,
            source_ip=source_ip,
            received_at=time.time(),
            vendor=parsed.vendor,
            hints=parsed.hints,
        )
        try:
            events = self.correlator.feed(pe)
        except Exception as exc:  # a bug: the phone was not wrong, and its report is kept
            events = [self.correlator.raw_report(pe, f"{type(exc).__name__}: {exc}")]
            self._correlation_failed(tenant.name)
            log.exception(
                "correlation failed; the report is stored raw (device_events/action_url):"
                " tenant=%s source=%s event=%s pairs=%s",
                tenant.name,
                source_ip,
                parsed.event or parsed.event_name,
                parsed.pairs,
            )
        mark(events, marks)
        return events, self._enqueue(events, self.devices.seen(tenant, pe))

    async def publish(self, event: Event, dedupe: str = "") -> tuple[Event, ...]:
        """A canonical event from a PBX or adapter (REST), through the correlator; returns
        the events committed (with `seq` and `event_id`)."""
        events = self.correlator.publish(event)
        queued = self._enqueue(events, None)
        # The batch's future is shared: a cancelled caller must not cancel it for the others.
        await asyncio.shield(queued.done)
        committed = queued.committed()
        if committed is None:
            raise StoreError("the database refused these events")
        return committed

    async def end_call(self, tenant: str, session_id: str) -> tuple[Event, ...] | None:
        """End an open call by hand; its events as committed. None: no such open call."""
        events = self.correlator.end_call(tenant, session_id)
        if events is None:
            return None
        queued = self._enqueue(events, None)
        await asyncio.shield(queued.done)  # shared by the batch: never cancel it
        committed = queued.committed()
        if committed is None:
            raise StoreError("the database refused these events")
        return committed

    async def tick(self) -> tuple[Event, ...]:
        """Timeouts and other decisions that come with time, not with an event."""
        events = self.correlator.tick()
        if not events and not self.correlator.has_changes():
            return ()
        queued = self._enqueue(events, None)
        await asyncio.shield(queued.done)
        return queued.committed() or ()

    def _enqueue(self, events: list[Event], device: DeviceSeen | None) -> Queued:
        batch, done = self._batch, self._batch_done
        if batch is None or done is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = Append([])
            done = self._batch_done = loop.create_future()
            loop.call_soon(self._flush)
        return Queued(done, batch.add_part(events, device))

    def _forget_unstored_devices(self, batch: Append, done: asyncio.Future[Appended]) -> None:
        """A device row that was not written is written with the next report, not in a
        minute: the cache of what was written must not keep what rolled back."""
        failed = done.cancelled() or done.exception() is not None
        parts = () if failed else done.result().parts
        for i, (_start, _end, device) in enumerate(batch.parts):
            if device >= 0 and (failed or i >= len(parts) or parts[i] is None):
                d = batch.devices[device]
                self.devices.forget(d)

    def _flush(self) -> None:
        """Queue this iteration's batch, with the state it changed, as one write."""
        batch, done = self._batch, self._batch_done
        self._batch = self._batch_done = None
        if batch is None or done is None:
            return
        done.add_done_callback(_log_failure)
        done.add_done_callback(lambda d: self._forget_unstored_devices(batch, d))
        try:
            changes = self.correlator.drain_changes()
            batch.sessions = changes.sessions
            batch.presence = changes.presence
            # Even a batch that changes nothing goes through the writer: its requests (a
            # duplicate report, say) may be answered only after what came before committed.
            self.log.submit(batch, done)
        except StoreError as exc:
            done.set_exception(exc)
        except Exception as exc:  # a bug: every request of the batch still gets an answer
            log.exception("batch not queued")
            done.set_exception(StoreError(f"batch not queued: {exc!r}"))


def _log_failure(done: asyncio.Future[Appended]) -> None:
    """Once per batch (its requests are answered 503 storage-unavailable)."""
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("events not stored (their requests are answered 503): %s", exc)
