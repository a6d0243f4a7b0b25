"""accept(raw) -> normalise -> correlate -> append -> publish, in a few lines (SPEC diagram).

Correlation runs on the event loop, one step at a time, and each step's output is queued to
the single writer in the same order, so `seq` order is correlation order. The response to a
phone is sent only after the step's transaction committed.
"""

from __future__ import annotations

import time

from callhook.correlate import Correlator
from callhook.directory import Tenant
from callhook.events import Event
from callhook.ingest.model import ParsedRequest, PhoneEvent
from callhook.store.log import Append, DeviceSeen, EventLog


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
    )


# A phone's device row is rewritten when what it says changes, else at most this often: its
# `last_seen` and `last_event` are exact to a minute, and ingest does not pay an UPSERT per request.
DEVICE_REFRESH_SECONDS = 60.0
MAX_DEVICE_CACHE = 100_000


class Pipeline:
    """Turns phone reports and published events into committed canonical events."""

    def __init__(self, log: EventLog, correlator: Correlator) -> None:
        self.log = log
        self.correlator = correlator
        self._devices: dict[tuple[str, str], tuple[tuple[str, ...], float]] = {}

    def _device_changed(self, d: DeviceSeen | None) -> DeviceSeen | None:
        if d is None:
            return None
        key = (d.tenant, d.mac)
        facts = (d.vendor, d.model, d.firmware, d.hardware, d.ip, d.extension)
        known = self._devices.get(key)
        if (
            known is not None
            and known[0] == facts
            and d.seen_at - known[1] < DEVICE_REFRESH_SECONDS
        ):
            return None
        if len(self._devices) >= MAX_DEVICE_CACHE:
            self._devices.clear()
        self._devices[key] = (facts, d.seen_at)
        return d

    async def ingest(self, tenant: Tenant, parsed: ParsedRequest, source_ip: str) -> list[Event]:
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
        events = self.correlator.feed(pe)
        return await self._commit(events, self._device_changed(device_of(tenant, pe)))

    async def publish(self, event: Event) -> list[Event]:
        """A canonical event from a PBX or adapter (REST), through the correlator."""
        return await self._commit(self.correlator.publish(event), None)

    async def tick(self) -> list[Event]:
        """Timeouts and other decisions that come with time, not with an event."""
        events = self.correlator.tick()
        changes = self.correlator.drain_changes()
        if not events and not changes.sessions and not changes.presence:
            return []
        return await self.log.append(Append(events, changes.sessions, changes.presence))

    async def _commit(self, events: list[Event], device: DeviceSeen | None) -> list[Event]:
        changes = self.correlator.drain_changes()
        return await self.log.append(Append(events, changes.sessions, changes.presence, device))
