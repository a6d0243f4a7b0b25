"""Event bodies in PortSIP's Pub/Sub wire format: field names and value types as there.

`time` is a string of Unix seconds, parties are `sip:NUMBER@domain` (the tenant's domain, for
external numbers too) with the plain number alongside (`caller_number`, ...).
Fields the guide does not show for a key (target_* events, call_reroute) follow its nearest
example and add what the key needs (`reason`, `transferred_by`, `fail_code`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callhook.correlate.state import Session
from callhook.directory import Tenant
from callhook.events import Event, sip_uri, unix_time


@dataclass(frozen=True, slots=True)
class TenantView:
    """What bodies need about the tenant, plus who counts as one of its extensions."""

    name: str  # the key the pipeline knows the tenant by (Event.tenant)
    tenant_name: str
    tenant_id: str
    domain: str
    tenant: Tenant | None
    known_phone: Callable[[str, str], bool]  # (tenant, number): a phone reported as this number

    @classmethod
    def of(
        cls, name: str, tenant: Tenant | None, known_phone: Callable[[str, str], bool]
    ) -> TenantView:
        if tenant is None:  # not configured (yet): still never lose the event
            return cls(name, name, "", name, None, known_phone)
        return cls(name, tenant.name, tenant.tenant_id, tenant.domain, tenant, known_phone)

    def is_extension(self, number: str) -> bool:
        if not number:
            return False
        if self.tenant is not None and number in self.tenant.extensions:
            return True
        return self.known_phone(self.name, number)

    def extension_id(self, number: str) -> str:
        ext = self.tenant.extensions.get(number) if self.tenant is not None else None
        return ext.extension_id if ext is not None else ""

    def display_name(self, number: str) -> str:
        return self.tenant.display_name(number) if self.tenant is not None else ""

    def uri(self, number: str) -> str:
        return sip_uri(number, self.domain)

    def base(self, key: str, now: float) -> dict[str, Any]:
        return {
            "event_type": key,
            "tenant_id": self.tenant_id,
            "tenant_name": self.tenant_name,
            "time": unix_time(now),
        }

    def event(
        self,
        key: str,
        body: dict[str, Any],
        extensions: tuple[str, ...] = (),
        session_id: str | None = None,
    ) -> Event:
        return Event(
            tenant=self.name, key=key, body=body, extensions=extensions, session_id=session_id
        )


def party(s: Session, tv: TenantView, number: str) -> str:
    """How a call party is written: `sip:NUMBER@domain`, extension or not, as PortSIP writes
    every party; the domain is the tenant's, or for an outside party the host a PBX gave
    (its trunk's); "" when unknown."""
    if not number:
        return ""
    host = s.hosts.get(number) if s.hosts else None
    return f"sip:{number}@{host}" if host else tv.uri(number)


def render_parties(s: Session, tv: TenantView) -> None:
    """Cache how caller and callee are written (they change rarely, are written often)."""
    s.w_caller = party(s, tv, s.caller)
    s.w_callee = party(s, tv, s.callee)


# Party fields (SIP addresses) that get their plain number alongside, as `<field>_number`.
ADDRESS_FIELDS = ("caller", "callee", "call_target", "aor", "peer_aor", "transferred_by")


def plain(address: str) -> str:
    """`sip:0711222333@domain` -> `0711222333` (how bodies write a party back to its number)."""
    user = address[4:] if address.startswith("sip:") else address
    return user.rpartition("@")[0] or user


def add_numbers(body: dict[str, Any], names: tuple[str, ...] = ADDRESS_FIELDS) -> None:
    """`caller_number: "0711222333"` next to `caller: "sip:0711222333@domain"`, and so on."""
    for name in names:
        value = body.get(name)
        if value and isinstance(value, str):
            body[name + "_number"] = plain(value)


def call_event(s: Session, tv: TenantView, key: str, now: float, **extra: Any) -> Event:
    """call_established / call_ended / call_noanswer / call_fail / target_* (PortSIP's shape)."""
    body: dict[str, Any] = {
        "call_id": s.call_id,
        "call_target": "",
        "callee": s.w_callee,
        "caller": s.w_caller,
        "event_type": key,
        "session_id": s.session_id,
        "tenant_id": tv.tenant_id,
        "tenant_name": tv.tenant_name,
        "time": str(int(now)),
        "caller_number": s.caller,
        "callee_number": s.callee,
    }
    if extra:
        body.update(extra)
        target = extra.get("call_target")
        if target:  # the hot path: the only party most extras name
            body["call_target_number"] = plain(target)
        if "transferred_by" in extra:
            add_numbers(body, ("transferred_by",))
    return Event(tv.name, key, body, s.extensions, None, s.session_id)


def call_start(s: Session, tv: TenantView, now: float) -> Event:
    body: dict[str, Any] = {
        "call_id": s.call_id,
        "callee": s.w_callee,
        "caller": s.w_caller,
        "caller_display_name": s.caller_display_name,
        "cdr_id": s.cdr_id,
        "direction": s.direction,
        "event_type": "call_start",
        "request_id": "0",
        "session_id": s.session_id,
        "tenant_id": tv.tenant_id,
        "tenant_name": tv.tenant_name,
        "time": unix_time(now),
        "caller_number": s.caller,
        "callee_number": s.callee,
    }
    if s.did:
        body["did"] = s.did
    return Event(tv.name, "call_start", body, s.extensions, None, s.session_id)


def hold_event(
    s: Session, tv: TenantView, key: str, now: float, holder: str, peer: str, call_id: str
) -> Event:
    """call_hold / call_unhold: `aor` is who (un)held, `peer_aor` the other party."""
    body: dict[str, Any] = {
        "aor": party(s, tv, holder),
        "call_id": call_id or s.call_id,
        "event_type": key,
        "peer_aor": party(s, tv, peer),
        "session_id": s.session_id,
        "tenant_id": tv.tenant_id,
        "tenant_name": tv.tenant_name,
        "time": unix_time(now),
    }
    add_numbers(body)
    return tv.event(key, body, s.extensions, s.session_id)


def direction(s: Session) -> str:
    """`ext` between extensions, else `inbound` / `outbound` from where the extension is."""
    caller_ext = bool(s.caller) and s.caller in s.extensions
    callee_ext = bool(s.callee) and s.callee in s.extensions
    if caller_ext and callee_ext:
        return "ext"
    if caller_ext:
        return "outbound"
    if callee_ext:
        return "inbound"
    # Neither number is known as ours (a phone that did not say its number): its role says.
    return "outbound" if any(leg.role == "caller" for leg in s.legs.values()) else "inbound"
