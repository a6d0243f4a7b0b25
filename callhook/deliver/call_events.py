"""VoipNow Call Events (docs/webhooks.md): which canonical event fires which rule, with what.

Pure: values in, values out. Mapping, from the rule extension's point of view:

| rule event        | canonical event    | fires when the rule's extension is ...      | CallFlow |
| ----------------- | ------------------ | ------------------------------------------- | -------- |
| `dial_in`         | `call_start`       | the callee                                  | IN       |
|                   | `target_ringing`   | a ringing target other than the callee      | IN       |
| `dial_out`        | `call_start`       | the caller                                  | OUT      |
| `answer_incoming` | `call_established` | the target that answered (else the callee)  | IN       |
| `answer_outgoing` | `call_established` | the caller                                  | OUT      |
| `hangup`          | `call_ended`       | involved in the call                        | IN / OUT |
|                   | `call_noanswer`    | (an unanswered call closes with one of      |          |
|                   | `call_fail`        | these instead of `call_ended`)              |          |
| any canonical key | that key           | involved in the event                       | IN / OUT |

Seed 003: Dial-In "occurs when a call is received by an extension", so every extension a
call rings gets one (a ring group's members too: `call_start` names only the first), and
"Answer on incoming call" only the one that answered (the others end with
`target_noanswer`, `answered_elsewhere`). An `IN` request is about the rule's extension:
it is the `CalledExtension` / `CalledNumber` there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from callhook.fields import extended_number

# Rule event (VoipNow's names) -> canonical key.
RULE_EVENTS: dict[str, str] = {
    "dial_in": "call_start",
    "dial_out": "call_start",
    "answer_incoming": "call_established",
    "answer_outgoing": "call_established",
    "hangup": "call_ended",
}
# Every canonical key a rule event may fire on (`flow` decides for which extension).
RULE_KEYS: dict[str, tuple[str, ...]] = {
    "dial_in": ("call_start", "target_ringing"),
    # A call closes with one of these (an unanswered one never has a call_ended).
    "hangup": ("call_ended", "call_noanswer", "call_fail"),
}

# VoipNow's default parameters, spelled exactly as VoipNow does, plus ours (docs/webhooks.md).
DEFAULT_PARAMS: tuple[str, ...] = (
    "CallID",
    "CallerIDNum",
    "CallerIDNam",
    "CalledDID",
    "CalledExtension",
    "CallStatus",
    "CallFlow",
    "CallerExtension",
    "CalledNumber",
    "CallerIDName",
    "EventID",
    "EventType",
)
# Action URL variables (Grandstream's) usable in a rule URL, with the other spellings of call id.
URL_VARIABLES: tuple[str, ...] = (
    "local",
    "remote",
    "display_local",
    "display_remote",
    "call_id",
    "call-id",
    "callid",
    "calldirection",
    "duration",
    "session_id",
    "time",
    "tenant",
)
_ALL_VARS = sorted({*DEFAULT_PARAMS, *URL_VARIABLES}, key=len, reverse=True)
# Longest name first, and never a prefix of a longer word: `$CallerIDName` is not
# `$CallerIDNam` + "e", and `$CallerIDNumber` is left alone.
_VAR_RE = re.compile(
    r"\$(" + "|".join(re.escape(v) for v in _ALL_VARS) + r")(?![A-Za-z0-9_])", re.IGNORECASE
)
_LOWER = {v.lower(): v for v in _ALL_VARS}


def canonical_key(rule_event: str) -> str:
    """The canonical key a rule event listens to (`dial_in` -> `call_start`)."""
    return RULE_EVENTS.get(rule_event, rule_event)


def listens_to(rule_event: str) -> tuple[str, ...]:
    """Every canonical key a rule event may fire on (`dial_in` -> call_start, target_ringing)."""
    return RULE_KEYS.get(rule_event) or (canonical_key(rule_event),)


def number(address: Any) -> str:
    """`sip:102@acme.example.com` -> `102`; a bare number stays as it is."""
    if not isinstance(address, str) or not address:
        return ""
    s = address
    for scheme in ("sips:", "sip:", "tel:"):
        if s[: len(scheme)].lower() == scheme:
            s = s[len(scheme) :]
            break
    return s.split("@", 1)[0].split(";", 1)[0]


def flow(
    rule_event: str,
    extension: str,
    body: Mapping[str, Any],
    involved: tuple[str, ...],
    key: str = "",
) -> str | None:
    """`IN` / `OUT` when the rule fires for this event (`key`, else the body's), else None."""
    caller = number(body.get("caller"))
    callee = number(body.get("callee"))
    if rule_event == "dial_in":
        if (key or body.get("event_type")) == "target_ringing":
            # The callee had its dial_in with call_start: one per extension and call.
            target = number(body.get("call_target"))
            return "IN" if extension == target and extension not in (callee, caller) else None
        return "IN" if extension == callee else None
    if rule_event == "dial_out":
        return "OUT" if extension == caller else None
    if rule_event == "answer_incoming":
        answerer = number(body.get("call_target")) or callee
        return "IN" if extension == answerer and extension != caller else None
    if rule_event == "answer_outgoing":
        return "OUT" if extension == caller else None
    # hangup and raw canonical keys: any involvement; the caller's side is OUT.
    if extension == caller:
        return "OUT"
    if extension == callee or extension in involved:
        return "IN"
    return None


def answered(body: Mapping[str, Any]) -> bool | None:
    """Whether a call_ended's call was answered, when the event says so; None: it doesn't."""
    if isinstance(body.get("answered"), bool):
        return bool(body["answered"])
    if "answer_time" in body:  # the CDR's field: "" when nobody answered
        return str(body["answer_time"] or "") not in ("0", "")
    talk = body.get("talk_seconds")
    if isinstance(talk, int | float):
        return talk > 0
    status = body.get("status")
    if isinstance(status, str) and status:
        return status == "answered"
    return None


def call_status(key: str, was_answered: bool) -> str:
    """Seed 003: CALLING for dial-in/out, ANSWER or UNKNOWN for hangup."""
    if key == "call_start":
        return "CALLING"
    if key == "call_established":
        return "ANSWER"
    if key == "call_ended":
        return "ANSWER" if was_answered else "UNKNOWN"
    return "UNKNOWN"


def params(
    rule_event: str,
    call_flow: str,
    body: Mapping[str, Any],
    *,
    event_id: str,
    was_answered: bool = False,
    extension: str = "",
    display_name: Callable[[str], str] = lambda _n: "",
    is_extension: Callable[[str], bool] = lambda _n: False,
    extended_prefix: str = "",
) -> dict[str, str]:
    """The default parameters of one request (VoipNow's), every value a string.

    `extension` is the rule's: an `IN` request is about it, so it is the called one (a
    ring group member that rang or answered is not the `callee` the call started with).
    With `extended_prefix` (`0003`) extensions are written in VoipNow's extended form
    `0003*101` in `CalledExtension`, `CallerExtension` and, when an extension was called,
    `CalledNumber` ("the extended number of an extension"); `CallerIDNum` stays the number.
    """
    caller = number(body.get("caller"))
    callee = number(body.get("callee"))
    direction = body.get("direction")
    if direction in ("ext", "inbound", "outbound"):
        caller_is_ext = direction in ("ext", "outbound")
        callee_is_ext = direction in ("ext", "inbound")
    else:
        caller_is_ext, callee_is_ext = is_extension(caller), is_extension(callee)
    caller_name = str(body.get("caller_display_name") or display_name(caller) or "")
    key = str(body.get("event_type") or canonical_key(rule_event))
    if rule_event in ("dial_in", "dial_out"):
        key = "call_start"  # VoipNow: CALLING, also for a dial_in on target_ringing
    if call_flow == "IN" and extension and extension != caller:
        callee, callee_is_ext = extension, True
    return {
        "CallID": str(body.get("call_id") or body.get("session_id") or ""),
        "CallerIDNum": caller,
        "CallerIDNam": caller_name,
        # The call's `did`: a PBX's event or a phone URL's `did=` pair said it (the outbox
        # carries it from the call_start to the call's later requests).
        "CalledDID": number(body.get("did")),
        "CalledExtension": extended_number(extended_prefix, callee) if callee_is_ext else "",
        "CallStatus": call_status(key, was_answered),
        "CallFlow": call_flow,
        "CallerExtension": extended_number(extended_prefix, caller) if caller_is_ext else "",
        "CalledNumber": extended_number(extended_prefix, callee) if callee_is_ext else callee,
        "CallerIDName": caller_name,
        "EventID": event_id,
        "EventType": rule_event,
    }


def url_variables(
    extension: str,
    values: Mapping[str, str],
    body: Mapping[str, Any],
    display_name: Callable[[str], str] = lambda _n: "",
) -> dict[str, str]:
    """Values for `$variables` in a rule URL: the default parameters plus Action URL names."""
    incoming = values.get("CallFlow") == "IN"
    remote = values.get("CallerIDNum", "") if incoming else values.get("CalledNumber", "")
    out = dict(values)
    call_id = values.get("CallID", "")
    out.update(
        {
            "local": extension,
            "remote": remote,
            "display_local": display_name(extension),
            "display_remote": values.get("CallerIDNam", "") if incoming else display_name(remote),
            "call_id": call_id,
            "call-id": call_id,
            "callid": call_id,
            "calldirection": "incoming" if incoming else "outgoing",
            "duration": str(body.get("duration") or body.get("talk_seconds") or ""),
            "session_id": str(body.get("session_id") or ""),
            "time": str(body.get("time") or ""),
            "tenant": str(body.get("tenant_name") or ""),
        }
    )
    return out


def expand_url(url: str, variables: Mapping[str, str]) -> str:
    """Replace `$name` with its percent-encoded value; unknown `$words` stay as written."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        value = variables.get(name)
        if value is None:
            value = variables.get(_LOWER.get(name.lower(), ""), "")
        return quote(value, safe="")

    return _VAR_RE.sub(sub, url) if "$" in url else url
