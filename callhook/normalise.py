"""Phone event -> what it means from that one phone's point of view (the table in docs/wsi.md).

Pure and table-driven: `normalise()` turns a `PhoneEvent` into a `CallReport` (a phone's view
of one call, merged into sessions by `callhook.correlate`) or a `DeviceReport` (registration,
DND/forwarding, hook and device events, unrecognised requests). No tenant, no state, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

from callhook.ingest.model import PhoneEvent

Phase = Literal["ring", "dial", "answer", "hangup", "missed", "hold", "unhold", "transfer"]
Role = Literal["caller", "target", ""]


@dataclass(frozen=True, slots=True)
class CallRule:
    """How one phone call event reads: its phase, what it says about the phone's role, and
    the canonical keys a phone reporting it alone yields, in order."""

    phase: Phase
    role: Role
    keys: tuple[str, ...]
    reason: str = ""


# docs/wsi.md, "A phone's report means". A Missed Call is always an incoming call at that phone.
CALL_RULES: Final[dict[str, CallRule]] = {
    "incoming_call": CallRule("ring", "target", ("call_start", "target_add", "target_ringing")),
    "outgoing_call": CallRule("dial", "caller", ("call_start",)),
    "establish_call": CallRule("answer", "", ("call_established",)),
    "terminate_call": CallRule("hangup", "", ("call_ended", "call_cdr")),
    "missed_call": CallRule("missed", "target", ("call_noanswer", "target_noanswer", "call_cdr")),
    "hold_call": CallRule("hold", "", ("call_hold",)),
    "resume_call": CallRule("unhold", "", ("call_unhold",)),
    "blind_transfer": CallRule("transfer", "", ("call_reroute",), "blind_transfer"),
    "attended_transfer": CallRule("transfer", "", ("call_reroute",), "attended_transfer"),
}

# call_reroute reason of a call the called party redirected (SIP 3xx with a new Contact).
REDIRECT: Final = "redirect"

# Phone events that are not about a call: phone event -> canonical key (topic from events.TOPICS).
DEVICE_KEYS: Final[dict[str, str]] = {
    "registration": "extension_register",
    "sign_off": "extension_register",
    "dnd_on": "dnd_on",
    "dnd_off": "dnd_off",
    "forward_on": "forward_on",
    "forward_off": "forward_off",
    "off_hook": "off_hook",
    "on_hook": "on_hook",
    "booting_completed": "boot_completed",
    "syslog_on": "syslog_on",
    "syslog_off": "syslog_off",
}

# `$calldirection` (Grandstream: "the phone is calling party or called party") -> role.
_DIRECTION_ROLES: Final[dict[str, Role]] = {
    "incoming": "target",
    "in": "target",
    "outgoing": "caller",
    "out": "caller",
}

# A phone does not say how long its registration lasts; PortSIP's examples use 300 s, phones
# commonly 3600 s. Presence only shows it, nothing expires on it.
REGISTRATION_EXPIRES: Final = 3600
# Bounds what one report can make the correlator remember (values come from the network).
MAX_VALUE_CHARS: Final = 256
# The variables that describe the phone (its presence `device`), not a call.
DEVICE_FIELDS: Final[tuple[str, ...]] = (
    "mac",
    "phone_ip",
    "product",
    "program_version",
    "hardware_version",
    "language",
    "active_user",
    "active_host",
    "display_local",
)


@dataclass(slots=True)
class CallReport:
    """One phone's view of one moment of one call (not frozen: built on the hot path)."""

    event: str  # phone event (PHONE_EVENTS)
    phase: Phase
    phone: str  # identity of the reporting phone: its number, else mac:/ip:
    own: str  # the phone's own number ("" when it did not say)
    remote: str  # the other party's number ("" when unknown)
    role: Role  # "caller", "target" (the called phone) or "" (unknown)
    call_id: str
    duration: int | None  # `$duration`, talk seconds
    display_local: str = ""
    display_remote: str = ""
    reason: str = ""  # call_reroute reason
    fail_code: int | None = None
    variables: dict[str, str] = field(default_factory=dict)  # as parsed; read, never changed
    did: str = ""  # the public number called, when the source said it (a `did=` pair, a PBX)


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """A phone event that is not about a call, with the phone's identity and details."""

    event: str | None  # phone event, None when unrecognised
    key: str  # canonical key (DEVICE_KEYS value, or "action_url")
    phone: str
    own: str
    device: dict[str, str]
    contact: dict[str, Any] | None = None  # extension_register only
    removed: bool = False  # sign_off: the contact is removed
    raw: dict[str, Any] | None = None  # action_url only: pairs, event_name, hints


def _clip(value: str) -> str:
    return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS]


def _int_or_none(value: str | None, limit: int = 10**9) -> int | None:
    """A non-negative integer from a phone's string, None when it is not one (never raises)."""
    if not value or len(value) > 10 or not (value.isascii() and value.isdigit()):
        return None
    n = int(value)
    return n if n <= limit else None


def phone_identity(variables: dict[str, str], source_ip: str = "") -> tuple[str, str]:
    """(phone key, own number): the number when the phone said it, else its MAC or address."""
    own = _clip(variables.get("local") or variables.get("active_user") or "")
    if own:
        return own, own
    mac = variables.get("mac", "")
    if mac:
        return f"mac:{_clip(mac)}", ""
    return f"ip:{_clip(variables.get('phone_ip') or source_ip)}", ""


def user_agent(variables: dict[str, str]) -> str:
    """Registration `user_agent` as PortSIP shows it: model and firmware."""
    return " ".join(v for v in (variables.get("product"), variables.get("program_version")) if v)


# Pairs a Registration URL may add (they are not phone variables: the admin types the
# phone's settings into the URL): the phone's SIP port and its registration interval.
PORT_PAIRS: Final = ("port", "sip_port")
EXPIRES_PAIRS: Final = ("expires", "register_expiration")
MAX_EXPIRES: Final = 7 * 86400


def _port(value: str | None) -> str:
    n = _int_or_none(value, 65535)
    return str(n) if n else ""


def split_host_port(address: str) -> tuple[str, str]:
    """`192.168.1.20:5062` -> (`192.168.1.20`, `5062`); `[fe80::1]:5060` likewise; a host
    without a port -> (host, "")."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, _port(rest[1:]) if rest.startswith(":") else ""
    host, sep, port = address.rpartition(":")
    if sep and host and ":" not in host and _port(port):
        return host, _port(port)
    return address, ""


def _join(host: str, port: str) -> str:
    if not port:
        return host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def contact(
    own: str,
    variables: dict[str, str],
    source_ip: str,
    now: float,
    removed: bool,
    pairs: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A PortSIP registration contact (PortSIP `registration_contacts` item) for one phone.

    `public_address` is the phone's address (`$phone_ip`, else where the request came from)
    with its SIP port when the phone reports one (`$phone_ip` as `host:port`, or a `port=`
    pair); `received_from` is where the request came from, with that port when it is the
    same host. `expires` is now plus the registration interval an `expires=` pair gives
    (seconds), else plus an hour.
    """
    pairs = pairs or {}
    host, port = split_host_port(_clip(variables.get("phone_ip") or source_ip))
    port = port or next((p for k in PORT_PAIRS if (p := _port(pairs.get(k)))), "")
    interval = next(
        (n for k in EXPIRES_PAIRS if (n := _int_or_none(pairs.get(k), MAX_EXPIRES))), None
    )
    mac = variables.get("mac", "")
    # RFC 4122 lets a UUID's node field be the MAC: a stable instance id per device.
    instance = (
        f"<urn:uuid:00000000-0000-1000-8000-{mac.lower()}>"
        if len(mac) == 12 and mac.isalnum()
        else ""
    )
    public = _join(host, port)
    uri = f"<sip:{own}@{public}>"
    if removed:
        uri += ";expires=0"
    if instance:
        uri += f';+sip.instance="{instance}"'
    t = int(now)
    source = source_ip or host
    return {
        "contact_uri": uri,
        "expires": t if removed else t + (interval or REGISTRATION_EXPIRES),
        "instance": instance,
        "last_update": t,
        "public_address": public,
        "received_from": _clip(_join(source, port) if source == host else source),
        "reg_id": 0,
        "user_agent": _clip(user_agent(variables)),
    }


def device_of(variables: dict[str, str]) -> dict[str, str]:
    """The device details a report carries (MAC, address, model, firmware...)."""
    return {k: _clip(variables[k]) for k in DEVICE_FIELDS if k in variables}


def normalise(pe: PhoneEvent, now: float) -> CallReport | DeviceReport:
    """The one-phone meaning of `pe` (never raises)."""
    v = pe.variables
    own = v.get("local") or v.get("active_user") or ""
    if own:
        if len(own) > MAX_VALUE_CHARS:
            own = own[:MAX_VALUE_CHARS]
        phone = own
    else:
        phone, own = phone_identity(v, pe.source_ip)
    rule = CALL_RULES.get(pe.event) if pe.event else None
    if rule is not None:
        # The hot path: one report per call event; plain lookups, positional construction.
        role = rule.role or _DIRECTION_ROLES.get(v.get("calldirection", "").lower(), "")
        remote = v.get("remote", "")
        call_id = v.get("call_id", "")
        if len(remote) > MAX_VALUE_CHARS or len(call_id) > MAX_VALUE_CHARS:
            remote, call_id = remote[:MAX_VALUE_CHARS], call_id[:MAX_VALUE_CHARS]
        duration = v.get("duration")
        return CallReport(
            pe.event or "",
            rule.phase,
            phone,
            own,
            remote,
            role,
            call_id,
            _int_or_none(duration) if duration is not None else None,
            _clip(v.get("display_local", "")),
            _clip(v.get("display_remote", "")),
            _reason(rule, pe.pairs),
            # Phones send no failure code; a URL carrying `fail_code` (SIP status) is honoured.
            _fail_code(pe.pairs.get("fail_code")) if pe.pairs else None,
            v,
            _clip(pe.pairs.get("did", "")) if pe.pairs else "",
        )
    device_info = device_of(v)
    if pe.source_ip:
        device_info["source_ip"] = _clip(pe.source_ip)
    key = DEVICE_KEYS.get(pe.event) if pe.event else None
    if key is None:
        raw: dict[str, Any] = {
            "event_name": pe.event_name or "",
            "pairs": dict(pe.pairs),
            "variables": dict(v),
            "hints": list(pe.hints),
            "vendor": pe.vendor,
        }
        return DeviceReport(pe.event, "action_url", phone, own, device_info, raw=raw)
    if key == "extension_register":
        removed = pe.event == "sign_off"
        c = contact(own, v, pe.source_ip, now, removed, pe.pairs) if own else None
        return DeviceReport(pe.event, key, phone, own, device_info, contact=c, removed=removed)
    return DeviceReport(pe.event, key, phone, own, device_info)


# Snom's `$local` is always the callee: on a call the phone placed, local and remote are the
# other way round. The parser swaps them when it knows the direction and else says so.
SNOM_DIRECTION_HINT: Final = "snom-direction-unknown"
_SNOM_AMBIGUOUS_PHASES: Final = frozenset({"answer", "hangup", "hold", "unhold", "transfer"})


def snom_direction_unknown(pe: PhoneEvent, rep: CallReport) -> bool:
    """Is `rep` a Snom report whose local/remote may be callee/caller rather than phone/other?"""
    if pe.hints and SNOM_DIRECTION_HINT in pe.hints:
        return True
    return (
        pe.vendor == "snom"
        and rep.phase in _SNOM_AMBIGUOUS_PHASES
        and "calldirection" not in pe.variables
    )


def swap_parties(rep: CallReport) -> None:
    """Read `rep` from the other end: the phone is its `remote` (Snom, a call it placed)."""
    rep.own, rep.remote = rep.remote, rep.own
    rep.display_local, rep.display_remote = rep.display_remote, rep.display_local
    if rep.own:
        rep.phone = rep.own


def _fail_code(value: str | None) -> int | None:
    code = _int_or_none(value, 699)
    return code if code is not None and code >= 300 else None  # SIP final, not 2xx


def _reason(rule: CallRule, pairs: dict[str, str] | None) -> str:
    """The rule's call_reroute reason, or `redirect` when a transfer says so (a server that
    saw the called party answer 3xx with a new target)."""
    if pairs and rule.phase == "transfer" and pairs.get("reason") == REDIRECT:
        return REDIRECT
    return rule.reason
