"""A PBX's published call events read as call reports, so that they go through the same
state machine as phones' reports: one session per call, presence, one CDR.

A PBX sees the whole call, so each of its events stands for the parties' phones: the caller
(`caller`), the called phone (`call_target`, else `callee`), or, for a hold, the phone that
held (`aor`) and its peer (`peer_aor`). The PBX also has the last word on how a call ends:
its `call_ended`, `call_noanswer` and `call_fail` close the session at once (a phone's own
hangup waits a moment for the other phone's report). Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from callhook.normalise import CallReport, Phase, Role

# Published keys that are about a call (the rest go through as they are).
CALL_KEYS: Final = frozenset(
    {
        "call_start",
        "call_established",
        "call_ended",
        "call_noanswer",
        "call_fail",
        "call_hold",
        "call_unhold",
        "call_reroute",
        "target_add",
        "target_ringing",
        "target_noanswer",
        "target_fail",
        "target_ended",
    }
)
# The key's closing end reason: the PBX says the call is over.
_CLOSES: Final = {"call_ended": "hangup", "call_noanswer": "no_answer", "call_fail": "failed"}
# Fields the correlator writes itself; the rest of a published body is kept on its event.
OWN_FIELDS: Final = frozenset(
    {
        "event_type",
        "session_id",
        "cdr_id",
        "time",
        "tenant_id",
        "tenant_name",
        "caller",
        "callee",
        "call_target",
        "aor",
        "peer_aor",
        "direction",
        "call_id",
        "did",
        "called_did",
        "CalledDID",
    }
)


@dataclass(frozen=True, slots=True)
class PublishedCall:
    """What one published call event means: reports in order, then maybe a close."""

    call_id: str
    reports: tuple[CallReport, ...]
    close: str = ""  # end reason when the PBX ended the call, else ""
    fail_code: int | None = None
    hosts: tuple[tuple[str, str], ...] = ()  # (number, SIP host) of parties as the PBX wrote them


def number(address: Any) -> str:
    """`sip:102@domain` (or `<sip:102@domain>`) -> `102`; a bare number stays as it is."""
    if not isinstance(address, str):
        return ""
    s = address.strip().removeprefix("<").removesuffix(">")
    for scheme in ("sips:", "sip:", "tel:"):
        if s[: len(scheme)].lower() == scheme:
            s = s[len(scheme) :]
            break
    return s.split("@", 1)[0].split(";", 1)[0][:256]


_PARTY_FIELDS: Final = ("caller", "callee", "call_target", "aor", "peer_aor", "transferred_by")
MAX_HOSTS: Final = 8


def hosts_of(body: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """(number, host) of every party written `sip:NUMBER@HOST` (a trunk's domain, for an
    outside number): the hub writes outside parties the way the PBX did."""
    out: dict[str, str] = {}
    for name in _PARTY_FIELDS:
        value = body.get(name)
        if not isinstance(value, str) or "@" not in value:
            continue
        host = value.strip().removesuffix(">").partition("@")[2].split(";", 1)[0][:255]
        n = number(value)
        if n and host and len(out) < MAX_HOSTS:
            out.setdefault(n, host)
    return tuple(out.items())


def _report(
    phase: Phase,
    own: str,
    remote: str,
    role: Role,
    call_id: str,
    *,
    display: str = "",
    reason: str = "",
    fail_code: int | None = None,
    did: str = "",
) -> CallReport:
    event = {"dial": "outgoing_call", "ring": "incoming_call"}.get(phase, phase)
    display_local, display_remote = (display, "") if role == "caller" else ("", display)
    return CallReport(
        event, phase, own, own, remote, role, call_id, None, display_local, display_remote,
        reason, fail_code, {}, did,
    )  # fmt: skip


def did_of(body: Mapping[str, Any]) -> str:
    """The public number called, as a PBX writes it (`did`, `called_did`, `CalledDID`)."""
    for name in ("did", "called_did", "CalledDID"):
        value = body.get(name)
        if isinstance(value, str) and value:
            return number(value)
    return ""


def read(key: str, body: Mapping[str, Any]) -> PublishedCall | None:
    """The reports a published call event stands for; None when it is not about a call."""
    if key not in CALL_KEYS:
        return None
    call_id = str(body.get("call_id") or "")[:256]
    hosts = hosts_of(body)
    if key in ("call_hold", "call_unhold"):
        holder = number(body.get("aor")) or number(body.get("caller"))
        peer = number(body.get("peer_aor")) or number(body.get("callee"))
        if not holder:
            return None
        phase: Phase = "hold" if key == "call_hold" else "unhold"
        return PublishedCall(call_id, (_report(phase, holder, peer, "", call_id),), hosts=hosts)
    caller, callee = number(body.get("caller")), number(body.get("callee"))
    target = number(body.get("call_target")) or callee
    name = body.get("caller_display_name")
    display = name[:256] if isinstance(name, str) else ""
    code = body.get("fail_code")
    fail_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    did = did_of(body)
    dial = (
        _report("dial", caller, callee, "caller", call_id, display=display, did=did)
        if caller
        else None
    )
    reps: list[CallReport] = [dial] if dial is not None else []
    if key == "call_reroute":
        by = number(body.get("transferred_by")) or caller
        reason = str(body.get("reason") or "blind_transfer")[:64]
        reps = [_report("transfer", by, target, "", call_id, reason=reason)] if by else []
    elif key in ("target_add", "target_ringing"):
        reps.append(_report("ring", target, caller, "target", call_id))
    elif key == "call_established":
        reps.append(_report("answer", target, caller, "target", call_id))
        if caller:  # the caller is in the call too
            reps.append(_report("answer", caller, callee, "caller", call_id))
    elif key in ("call_noanswer", "target_noanswer"):
        reps.append(_report("missed", target, caller, "target", call_id))
    elif key in ("call_fail", "target_fail"):
        code = fail_code if fail_code is not None else 0
        reps.append(_report("hangup", target, caller, "target", call_id, fail_code=code))
    elif key == "target_ended":
        reps.append(_report("hangup", target, caller, "target", call_id))
    reps = [r for r in reps if r.own]
    if not reps:
        return None
    return PublishedCall(call_id, tuple(reps), _CLOSES.get(key, ""), fail_code, hosts)
