"""Presence per extension: registrations, DND, forwarding, hook state, calls, last seen.

Kept current by the phones' own reports (normalise.DeviceReport and every call report) and by
canonical events a PBX publishes. Device events that merely repeat what is already known
within `dedup_window` are dropped here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callhook.correlate.bodies import TenantView
from callhook.correlate.state import CorrelationSettings
from callhook.events import Event
from callhook.normalise import DeviceReport, device_of

# Toggle keys -> (presence attribute, value); a repeat of the same transition is a duplicate.
_TOGGLES: dict[str, tuple[str, str]] = {
    "dnd_on": ("dnd", "on"),
    "dnd_off": ("dnd", "off"),
    "forward_on": ("forward", "on"),
    "forward_off": ("forward", "off"),
    "off_hook": ("hook", "off_hook"),
    "on_hook": ("hook", "on_hook"),
}
_MAX_CONTACTS = 16
_LAST_SEEN_STEP = 60.0  # persist last_seen at most once a minute per extension


@dataclass(slots=True, eq=False)
class Presence:
    """What is known about one extension."""

    number: str
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    device: dict[str, str] = field(default_factory=dict)
    toggles: dict[str, tuple[str, float]] = field(default_factory=dict)  # dnd/forward/hook
    calls: dict[str, bool] = field(default_factory=dict)  # session id -> ringing here
    reports: set[str] = field(default_factory=set)  # phone events this phone is seen to send
    last_seen: float = 0.0
    saved_seen: float = 0.0
    signed_off: bool = False
    last_removed: tuple[str, float] | None = None  # the last Sign Off: (contact key, when)

    def state(self, tenant: str) -> dict[str, Any]:
        dnd = self.toggles.get("dnd", ("off", 0.0))[0] == "on"
        if self.calls:
            status = "busy" if not all(self.calls.values()) else "ringing"
        elif dnd:
            status = "dnd"
        elif self.contacts or (self.last_seen and not self.signed_off):
            status = "available"
        else:
            status = "offline"
        return {
            "tenant": tenant,
            "extension": self.number,
            "status": status,
            "registered": bool(self.contacts),
            "contacts": list(self.contacts.values()),
            "device": dict(self.device),
            "dnd": dnd,
            "forward": self.toggles.get("forward", ("off", 0.0))[0] == "on",
            "hook": self.toggles.get("hook", ("", 0.0))[0],
            "sessions": list(self.calls),
            "ringing": any(self.calls.values()),
            "last_seen": int(self.last_seen),
            "reports": sorted(self.reports),
            "signed_off": self.signed_off,
        }


def _contact_key(c: dict[str, Any]) -> str:
    """Which device a contact is: its instance id, else its address (a phone's Sign Off
    contact differs from its Registration one by `;expires=0` in the URI)."""
    return str(c.get("instance") or c.get("public_address") or c.get("contact_uri") or "")


def _number_of(address: Any) -> str:
    """'sip:102@domain' -> '102'; a bare number stays as it is."""
    if not isinstance(address, str):
        return ""
    user = address.split(":", 1)[1] if address.startswith(("sip:", "sips:")) else address
    return user.split("@", 1)[0]


class PresenceBook:
    """Presence of every extension of every tenant, bounded per tenant."""

    def __init__(self, settings: CorrelationSettings) -> None:
        self._settings = settings
        self._by_tenant: dict[str, dict[str, Presence]] = {}
        self.dirty: set[tuple[str, str]] = set()

    def known(self, tenant: str, number: str) -> bool:
        by_number = self._by_tenant.get(tenant)
        return by_number is not None and number in by_number

    def get(self, tenant: str, number: str) -> Presence | None:
        by_number = self._by_tenant.get(tenant)
        return by_number.get(number) if by_number is not None else None

    def entry(self, tenant: str, number: str) -> Presence:
        by_number = self._by_tenant.setdefault(tenant, {})
        p = by_number.get(number)
        if p is None:
            if len(by_number) >= self._settings.max_presence_per_tenant:
                del by_number[next(iter(by_number))]  # bound memory under any input
            p = by_number[number] = Presence(number)
        return p

    def numbers(self, tenant: str) -> list[str]:
        """Every extension of `tenant` that has presence (phones reported it)."""
        return list(self._by_tenant.get(tenant, {}))

    def state(self, tenant: str, number: str) -> dict[str, Any]:
        p = self.get(tenant, number)
        return (p or Presence(number)).state(tenant)

    def seen(
        self, tenant: str, number: str, event: str | None, variables: dict[str, str], now: float
    ) -> None:
        """Any report from the phone of `number`: last seen, what it sends, its device.

        On the hot path: state is saved (marked dirty) on news or once a minute, and the
        device details, which rarely change, are compared only then.
        """
        by_number = self._by_tenant.get(tenant)
        p = by_number.get(number) if by_number is not None else None
        if p is None:
            p = self.entry(tenant, number)
        p.last_seen = now
        news = p.signed_off or (event is not None and event not in p.reports)
        if not news and now - p.saved_seen < _LAST_SEEN_STEP:
            return
        p.signed_off = False
        if event:
            p.reports.add(event)
        p.device.update(device_of(variables))
        p.saved_seen = now
        self.dirty.add((tenant, number))

    def reports(self, tenant: str, number: str, event: str) -> bool:
        """Has the phone of `number` been seen to send `event` (it is configured to)?"""
        p = self.get(tenant, number)
        return p is not None and event in p.reports

    def set_call(self, tenant: str, number: str, session_id: str, ringing: bool) -> None:
        p = self.entry(tenant, number)
        if p.calls.get(session_id) is not ringing:
            p.calls[session_id] = ringing
            self.dirty.add((tenant, number))

    def end_call(self, tenant: str, number: str, session_id: str) -> None:
        p = self.get(tenant, number)
        if p is not None and p.calls.pop(session_id, None) is not None:
            self.dirty.add((tenant, number))

    def apply_device(self, tv: TenantView, rep: DeviceReport, now: float) -> list[Event]:
        """A phone's non-call event -> its canonical event; [] when it repeats known state."""
        t, own = tv.name, rep.own
        p = self.entry(t, own) if own else None
        if p is not None:
            self.seen(t, own, rep.event, rep.device, now)
        if p is not None and rep.contact is not None and self._same_registration(p, rep, now):
            return []
        toggle = _TOGGLES.get(rep.key)
        if toggle is not None and p is not None:
            attr, value = toggle
            last = p.toggles.get(attr)
            if (
                last is not None
                and last[0] == value
                and now - last[1] <= self._settings.dedup_window
            ):
                return []
            p.toggles[attr] = (value, now)
            self.dirty.add((t, own))
        body = tv.base(rep.key, now)
        body["extension"] = tv.uri(own) if own else ""
        body["extension_id"] = tv.extension_id(own)
        if rep.key == "extension_register":
            self._register(t, p, rep, body)
        elif rep.key == "action_url":
            body.update(rep.raw or {})
            body.update(rep.device)
        elif rep.key not in ("dnd_on", "dnd_off", "forward_on", "forward_off"):
            body.update(rep.device)  # device_events: which device, at which address
        return [tv.event(rep.key, body, (own,) if own else ())]

    def _same_registration(self, p: Presence, rep: DeviceReport, now: float) -> bool:
        """A Registration of a device already registered as it is, or a Sign Off of one just
        removed, within dedup_window (a repeat, not a change)."""
        c = rep.contact
        assert c is not None
        key, window = _contact_key(c), self._settings.dedup_window
        if rep.removed:
            last = p.last_removed
            return (
                key not in p.contacts
                and last is not None
                and last[0] == key
                and (now - last[1] <= window)
            )
        known = p.contacts.get(key)
        return (
            known is not None
            and known.get("public_address") == c["public_address"]
            and known.get("user_agent") == c["user_agent"]
            and now - float(known.get("last_update", 0)) <= window
        )

    def _register(
        self, t: str, p: Presence | None, rep: DeviceReport, body: dict[str, Any]
    ) -> None:
        """Registration adds the phone's contact, Sign Off removes it; the body lists what
        remains registered (PortSIP: `registration_contacts` absent when nothing is)."""
        c = rep.contact
        if c is None or p is None:
            body["removed_contacts" if rep.removed else "registration_contacts"] = [c] if c else []
            return
        key = _contact_key(c)
        if rep.removed:
            p.contacts.pop(key, None)
            p.signed_off = not p.contacts
            p.last_removed = (key, float(c["last_update"]))
            body["removed_contacts"] = [c]
        elif key in p.contacts or len(p.contacts) < _MAX_CONTACTS:
            p.contacts[key] = c
        if p.contacts:
            body["registration_contacts"] = list(p.contacts.values())
        elif not rep.removed:
            body["registration_contacts"] = [c]
        self.dirty.add((t, p.number))

    def apply_published(self, ev: Event, now: float) -> bool:
        """A canonical event from a PBX: update presence when it is about an extension."""
        body = ev.body
        number = _number_of(body.get("extension")) or (ev.extensions[0] if ev.extensions else "")
        if not number:
            return False
        if ev.key == "extension_register":
            p = self.entry(ev.tenant, number)
            current = body.get("registration_contacts")
            contacts = current if isinstance(current, list) else []
            p.contacts = {
                _contact_key(c): c for c in contacts[:_MAX_CONTACTS] if isinstance(c, dict)
            }
            p.signed_off = not p.contacts
        elif ev.key in _TOGGLES:
            p = self.entry(ev.tenant, number)
            attr, value = _TOGGLES[ev.key]
            p.toggles[attr] = (value, now)
        else:
            return False
        p.last_seen = now
        self.dirty.add((ev.tenant, number))
        return True

    def drop_tenant(self, tenant: str) -> None:
        """A deleted tenant: forget its extensions' presence (nothing is emitted)."""
        self._by_tenant.pop(tenant, None)
        self.dirty = {key for key in self.dirty if key[0] != tenant}

    def tenants(self) -> set[str]:
        return set(self._by_tenant)

    def has_changes(self) -> bool:
        return bool(self.dirty)

    def drain(self) -> list[tuple[str, str, dict[str, Any]]]:
        out = [(t, n, self.state(t, n)) for t, n in self.dirty]
        self.dirty.clear()
        return out

    def restore(self, d: dict[str, Any]) -> None:
        """Rebuild one extension from its `state()` (calls come back with their sessions)."""
        p = self.entry(str(d["tenant"]), str(d["extension"]))
        p.contacts = {_contact_key(c): c for c in d.get("contacts", ()) if isinstance(c, dict)}
        p.device = dict(d.get("device", {}))
        p.reports = set(d.get("reports", ()))
        p.last_seen = p.saved_seen = float(d.get("last_seen", 0))
        p.signed_off = bool(d.get("signed_off", False))
        for attr, on in (("dnd", "on"), ("forward", "on")):
            if d.get(attr):
                p.toggles[attr] = (on, 0.0)
        if d.get("hook"):
            p.toggles["hook"] = (str(d["hook"]), 0.0)
