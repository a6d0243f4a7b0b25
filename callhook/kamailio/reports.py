"""What Kamailio reports (one flat JSON object per SIP observation) means for the hub.

Pure: a report becomes phone-style call reports, each told from one party's side, that the
correlator merges into the session of that Call-ID. A phone that reports the same call
(the same SIP Call-ID) lands in the same session, on the same leg (its extension number), so
each lifecycle event is still emitted once. Registrations become `extension_register`
events with PortSIP's contact objects.

Report fields (all strings unless said): `id` the report's own id (read by routes.py to
recognise a batch sent again), `ev` what happened, `t` Kamailio's clock (Unix
seconds with microseconds), `ci` Call-ID, `fu` caller user, `tu` called user, `dom` the SIP
domain (selects the tenant), and per `ev`:

| ev | sent from | extra fields | meaning |
| --- | --- | --- | --- |
| invite | request_route, initial INVITE | fn (caller's display name) | the caller dialled |
| ringing | onreply_route, first 18x | code (int) | the called party rings |
| answer | event_route[dialog:start] | | the called party answered (200 OK) |
| end | event_route[dialog:end] | at (answer time), by (who sent the BYE) | hangup |
| fail | event_route[dialog:failed] | code (int) | final status >= 300, or 487 when cancelled |
| hold / unhold | re-INVITE with a=sendonly / a=sendrecv | by, peer | one party held / resumed |
| redirect | failure_route, 301/302 | target (the reply's Contact), code (int) | sent elsewhere |
| register | after save("location") | src, before, after (contact lists) | REGISTER |
| expired | event_route[usrloc:contact-expired] | gone, after (contact lists) | expiry |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from callhook.directory import Tenant
from callhook.ingest.model import ParsedRequest
from callhook.normalise import REDIRECT

VENDOR: Final = "kamailio"
SOURCE: Final = "kamailio"
MAX_REPORTS: Final = 1000  # per request
MAX_CONTACTS: Final = 32
_MAX_CHARS: Final = 256
# A call that ends with one of these was not refused: nobody picked up (CANCEL, timeout).
_NO_ANSWER_CODES: Final = frozenset({408, 487})
_CALL_EVENTS: Final = frozenset(
    {"invite", "ringing", "answer", "end", "fail", "hold", "unhold", "redirect"}
)
_REG_EVENTS: Final = frozenset({"register", "expired"})


class BadReport(ValueError):
    """A report the hub cannot use; the message says why (it is skipped, not fatal)."""


@dataclass(slots=True)
class Translation:
    """What one report means: phone-style reports to correlate, or a registration event."""

    calls: list[ParsedRequest] = field(default_factory=list)
    register: dict[str, Any] | None = None  # extension_register fields (extension, contacts)
    # Kamailio's talk time (answer to BYE, its clock): the CDR says this, whatever a phone
    # reported before (the server's view wins).
    talk_seconds: int | None = None


def translate(report: Any, tenant: Tenant) -> Translation:
    """The meaning of one report for `tenant`; BadReport when it is not usable."""
    if not isinstance(report, dict):
        raise BadReport("a report is a JSON object")
    ev = _text(report, "ev")
    dom = _text(report, "dom")
    if dom.lower() != tenant.domain.lower():
        raise BadReport(f"domain {dom!r} is not tenant {tenant.name!r}'s ({tenant.domain!r})")
    if ev in _REG_EVENTS:
        return Translation(register=_registration(ev, report))
    if ev not in _CALL_EVENTS:
        raise BadReport(f"unknown report {ev!r}")
    ci, caller, callee = _text(report, "ci"), _text(report, "fu"), _text(report, "tu")
    if not ci or not caller or not callee:
        raise BadReport("a call report needs ci, fu and tu")
    t = _time(report.get("t"))
    out = Translation()

    def said(event: str, own: str, remote: str, **more: str) -> None:
        variables = {"local": own, "remote": remote, "call_id": ci, **more}
        pairs: dict[str, str] = {
            k: variables.pop(k) for k in ("fail_code", "reason") if k in variables
        }
        out.calls.append(ParsedRequest(None, event, event, variables, pairs, vendor=VENDOR))

    if ev == "invite":
        name = _text(report, "fn")
        said("outgoing_call", caller, callee, **({"display_local": name} if name else {}))
    elif ev == "ringing":
        said("incoming_call", callee, caller)
    elif ev == "answer":
        said("establish_call", callee, caller, calldirection="incoming")
        said("establish_call", caller, callee, calldirection="outgoing")
    elif ev == "end":
        answered = _time(report.get("at"))
        if answered and t:
            out.talk_seconds = max(0, round(t - answered))
        talk = {"duration": str(out.talk_seconds)} if out.talk_seconds is not None else {}
        first_callee = _text(report, "by") == callee
        sides = [(callee, caller, "incoming"), (caller, callee, "outgoing")]
        for own, remote, way in sides if first_callee else sides[::-1]:
            said("terminate_call", own, remote, calldirection=way, **talk)
    elif ev == "fail":
        code = _code(report.get("code"))
        if code in _NO_ANSWER_CODES:
            said("missed_call", callee, caller)
        else:
            said("terminate_call", callee, caller, calldirection="incoming", fail_code=str(code))
    elif ev in ("hold", "unhold"):
        by, peer = _text(report, "by"), _text(report, "peer")
        if not by:
            raise BadReport("a hold report needs by")
        said("hold_call" if ev == "hold" else "resume_call", by, peer or "")
    elif ev == "redirect":
        # 3xx with a new target (its Contact); dialog:failed with the 3xx follows, and the
        # caller may place the call again to the target with the same Call-ID.
        target = _user(_text(report, "target"))
        if not target:
            raise BadReport("a redirect report needs target (a SIP URI with a user)")
        said("blind_transfer", callee, target, reason=REDIRECT)
    return out


def _user(contact: str) -> str:
    """`104` from a Contact like `"Bob" <sip:104@host;transport=udp>;expires=60`."""
    uri = contact.split("<", 1)[1].split(">", 1)[0] if "<" in contact else contact
    uri = uri.strip()
    scheme, _, rest = uri.partition(":")
    if scheme.lower() == "tel":
        return rest.split(";", 1)[0]
    if scheme.lower() not in ("sip", "sips") or "@" not in rest:
        return ""
    return rest.split("@", 1)[0].split(";", 1)[0]  # without user parameters (;ext=1)


def _registration(ev: str, report: dict[str, Any]) -> dict[str, Any]:
    number = _text(report, "tu")
    if not number:
        raise BadReport("a registration report needs tu (the extension)")
    src = _text(report, "src")
    t = int(_time(report.get("t")))
    after = _contacts(report.get("after"), src, t)
    if ev == "register":
        before = _contacts(report.get("before"), src, t)
        kept = {c["contact_uri"] for c in after}
        removed = [c for c in before if c["contact_uri"] not in kept]
    else:
        removed = _contacts(report.get("gone"), src, t)
        gone = {c["contact_uri"] for c in removed}
        after = [c for c in after if c["contact_uri"] not in gone]
    for c in removed:
        c["contact_uri"] += ";expires=0"
        c["expires"] = c["last_update"] = t
    fields: dict[str, Any] = {"extension": number, "time": str(t)}
    if after:
        fields["registration_contacts"] = after
    if removed:
        fields["removed_contacts"] = removed
    if not after and not removed:
        fields["removed_contacts"] = []  # a sign-off of a contact that was never there
    return fields


def _contacts(value: Any, src: str, now: int) -> list[dict[str, Any]]:
    """usrloc contacts as PortSIP's `registration_contacts` items."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadReport("contact lists are JSON arrays")
    out = []
    for c in value[:MAX_CONTACTS]:
        if not isinstance(c, dict):
            raise BadReport("a contact is a JSON object")
        addr = _text(c, "addr")
        if not addr:
            continue
        received = _text(c, "received")
        public = _host_port(received or "") or src
        instance = _text(c, "instance")
        instance = "" if instance == "<null>" else instance
        uri = f"<{addr}>" + (f';+sip.instance="{instance}"' if instance else "")
        out.append(
            {
                "contact_uri": uri,
                "expires": _int(c.get("expires"), now),
                "instance": instance,
                "last_update": _int(c.get("modified"), now),
                "public_address": public,
                "received_from": public,
                "reg_id": _int(c.get("reg_id"), 0),
                "user_agent": _text(c, "ua"),
            }
        )
    return out


def _host_port(uri: str) -> str:
    """`1.2.3.4:5060` from a received URI like `sip:1.2.3.4:5060;transport=udp`."""
    return uri.removeprefix("sip:").split(";", 1)[0]


def _text(d: dict[str, Any], name: str) -> str:
    value = d.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadReport(f"{name} must be a string")
    if len(value) > _MAX_CHARS:
        raise BadReport(f"{name} is longer than {_MAX_CHARS} characters")
    return value


def _time(value: Any) -> float:
    """Kamailio's `$TV(Sn)`: "seconds.microseconds"; 0.0 when absent."""
    if value in (None, ""):
        return 0.0
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise BadReport(f"time {value!r} is not seconds") from None
    if not 0 <= t < 1e11:
        raise BadReport(f"time {value!r} is out of range")
    return t


def _code(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 300 <= value <= 699:
        return value
    raise BadReport(f"code {value!r} is not a SIP final status (300-699)")


def _int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12:
        return value
    return default
