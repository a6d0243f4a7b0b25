"""Phone vendors' names for Action URL events and variables, mapped to canonical names.

Every table here is built once at import and never changed. Names are compared after
`fold`, so `Incoming Call`, `incoming_call`, `incoming-call` and `IncomingCall` are one name
Sources: Grandstream's Event Notification and ActionURL guides and the vendors' admin
guides, summed up in docs/vendors.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from callhook.ingest.model import PHONE_EVENTS

# The vendors whose dialect the parser knows; "aastra" covers Mitel too.
VENDORS: tuple[str, ...] = ("grandstream", "yealink", "snom", "fanvil", "aastra")
DEFAULT_VENDOR = "grandstream"


def fold(name: str) -> str:
    """Return `name` lower-cased without spaces, `_` and `-`: the form names are matched in."""
    # Chained str.replace beats str.translate and re.sub on the short names seen here.
    return name.replace(" ", "").replace("_", "").replace("-", "").lower()


# What each vendor calls each canonical event, in the spelling its admin UI or config shows.
# Used by the `phone-urls` command to tell an admin which field gets which URL. Missing
# entries: the vendor has no such event (Yealink and Snom have no syslog events).
VENDOR_EVENT_NAMES: dict[str, dict[str, str]] = {
    # Seeds 000/001, "Supported Events".
    "grandstream": {
        "incoming_call": "Incoming Call",
        "outgoing_call": "Outgoing Call",
        "establish_call": "Establish Call",
        "terminate_call": "Terminate Call",
        "off_hook": "Off Hook",
        "on_hook": "On Hook",
        "missed_call": "Missed Call",
        "dnd_on": "DND On",
        "dnd_off": "DND Off",
        "forward_on": "Call Forwarding On",
        "forward_off": "Call Forwarding Off",
        "hold_call": "Hold Call",
        "resume_call": "Resume Call",
        "syslog_on": "Syslog On",
        "syslog_off": "Syslog Off",
        "booting_completed": "Booting Completed",
        "blind_transfer": "Blind Transferring",
        "attended_transfer": "Attended Transferring",
        "registration": "Registration",
        "sign_off": "Sign Off",
    },
    # Yealink's `action_url.*` keys; forward key names are unconfirmed in its guides, these
    # are the ones Yealink's config templates use for "always" forwarding.
    "yealink": {
        "incoming_call": "incoming_call",
        "outgoing_call": "outgoing_call",
        "establish_call": "call_established",
        "terminate_call": "call_terminated",
        "off_hook": "off_hook",
        "on_hook": "on_hook",
        "missed_call": "missed_call",
        "dnd_on": "dnd_on",
        "dnd_off": "dnd_off",
        "forward_on": "always_fwd_on",
        "forward_off": "always_fwd_off",
        "hold_call": "hold",
        "resume_call": "unhold",
        "booting_completed": "setup_completed",
        "blind_transfer": "blind_transfer",
        "attended_transfer": "attended_transfer",
        "registration": "log_on",
        "sign_off": "log_off",
    },
    # Snom's `action_*_url` settings.
    "snom": {
        "incoming_call": "action_incoming_url",
        "outgoing_call": "action_outgoing_url",
        "establish_call": "action_connected_url",
        "terminate_call": "action_disconnected_url",
        "off_hook": "action_offhook_url",
        "on_hook": "action_onhook_url",
        "missed_call": "action_missed_url",
        "dnd_on": "action_dnd_on_url",
        "dnd_off": "action_dnd_off_url",
        "forward_on": "action_redirection_on_url",
        "forward_off": "action_redirection_off_url",
        "hold_call": "action_hold",
        "resume_call": "action_unhold",
        "booting_completed": "action_setup_url",
        "blind_transfer": "action_blind_transfer",
        "attended_transfer": "action_attended_transfer",
        "registration": "action_log_on_url",
        "sign_off": "action_log_off_url",
    },
    # Fanvil's web UI labels (Phone -> Action URL); no public guide lists them;
    # Fanvil's dialect otherwise looks the same as Yealink's.
    "fanvil": {
        "incoming_call": "Incoming Call",
        "outgoing_call": "Outgoing Call",
        "establish_call": "Call Established",
        "terminate_call": "Call Terminated",
        "off_hook": "Off Hook",
        "on_hook": "On Hook",
        "missed_call": "Missed Call",
        "dnd_on": "DND Enabled",
        "dnd_off": "DND Disabled",
        "forward_on": "Always FWD Enabled",
        "forward_off": "Always FWD Disabled",
        "hold_call": "Hold",
        "resume_call": "UnHold",
        "booting_completed": "Setup Completed",
        "blind_transfer": "Blind Transfer",
        "attended_transfer": "Attended Transfer",
        "registration": "Registration Succeeded",
        "sign_off": "Registration Disabled",
    },
}

# Further accepted spellings that no vendor table above lists. Deliberately not mapped:
# Yealink `transfer_finished`, `register_failed` and Snom `action_reg_failed` (docs/vendors.md
# lists them next to transfers / registration, but they are not those events); they are
# kept raw as unrecognised events instead of being reported as something they are not.
_EXTRA_EVENT_NAMES: dict[str, tuple[str, ...]] = {
    # Grandstream's example labels the resume event "On Unhold" and its capture "On Hold".
    "hold_call": ("On Hold", "action_hold_url"),
    "resume_call": ("On Unhold", "Unhold", "action_unhold_url"),
    # Yealink's other forward kinds (busy, no answer) and its *_call transfer keys.
    "forward_on": ("busy_fwd_on", "no_answer_fwd_on", "Busy FWD Enabled", "No Answer FWD Enabled"),
    "forward_off": (
        "busy_fwd_off",
        "no_answer_fwd_off",
        "Busy FWD Disabled",
        "No Answer FWD Disabled",
    ),
    "blind_transfer": ("blind_transfer_call", "action_blind_transfer_url"),
    "attended_transfer": ("attended_transfer_call", "action_attended_transfer_url"),
}


def _build(
    pairs: Iterable[tuple[str, str]], *, prefixes: tuple[str, ...] = ("",)
) -> dict[str, str]:
    """Map fold(prefix + alias) -> canonical; a folded alias naming two canonicals is a bug."""
    table: dict[str, str] = {}
    for alias, canonical in pairs:
        for prefix in prefixes:
            key = fold(prefix + alias)
            if table.setdefault(key, canonical) != canonical:
                raise AssertionError(f"{alias!r} folds onto {table[key]!r} and {canonical!r}")
    return table


def _event_aliases() -> Iterable[tuple[str, str]]:
    for canonical in PHONE_EVENTS:
        yield canonical, canonical
    for names in VENDOR_EVENT_NAMES.values():
        for canonical, name in names.items():
            yield name, canonical
    for canonical, extra in _EXTRA_EVENT_NAMES.items():
        for name in extra:
            yield name, canonical


# Yealink names may arrive with their config key prefix (`action_url.call_established`).
EVENT_BY_FOLDED: Mapping[str, str] = _build(_event_aliases(), prefixes=("", "action_url."))

# docs/vendors.md, "Variables"; the canonical names are aliases of themselves.
VARIABLE_ALIASES: dict[str, tuple[str, ...]] = {
    "phone_ip": ("ip", "LOCALIP"),
    "mac": (),
    "product": ("model",),
    "program_version": ("firmware",),
    "hardware_version": (),
    "language": (),
    "local": ("localNumber",),
    "display_local": ("localName",),
    "remote": ("remoteNumber", "REMOTENUMBER"),
    "display_remote": ("remoteName", "DISPLAYNAME", "INCOMINGNAME"),
    "call_id": ("call-id", "callid", "callId", "CallID"),
    "active_user": ("account", "SIPUSERNAME"),
    "active_host": ("sipServer",),
    "duration": ("CALLDURATION",),
    "calldirection": ("callDirection", "CALLDIRECTION", "callType"),
}

VARIABLE_BY_FOLDED: Mapping[str, str] = _build(
    (alias, canonical)
    for canonical, aliases in VARIABLE_ALIASES.items()
    for alias in (canonical, *aliases)
)

# Substrings of a User-Agent header that name the vendor, checked in order. Yealink's OEMs
# behave like Yealink; Mitel bought Aastra and kept its Action URL dialect.
_USER_AGENT_MARKS: tuple[tuple[str, str], ...] = (
    ("grandstream", "grandstream"),
    ("yealink", "yealink"),
    ("snom", "snom"),
    ("fanvil", "fanvil"),
    ("aastra", "aastra"),
    ("mitel", "aastra"),
    ("sangoma", "yealink"),
    ("clearlyip", "yealink"),
    ("akuvox", "yealink"),
)

# Values accepted in an explicit `vendor=` pair, folded.
VENDOR_BY_FOLDED: Mapping[str, str] = {
    **{vendor: vendor for vendor in VENDORS},
    "mitel": "aastra",
}


def event_from_name(name: str) -> str | None:
    """Return the canonical event for a vendor's event name, or None if it names none."""
    return EVENT_BY_FOLDED.get(fold(name))


def variable_from_name(name: str) -> str | None:
    """Return the canonical variable for a vendor's variable name, or None if unknown."""
    return VARIABLE_BY_FOLDED.get(fold(name))


def vendor_from_user_agent(ua: str) -> str | None:
    """Return the vendor a User-Agent header names, or None when it names none we know."""
    if not ua:
        return None
    lowered = ua.lower()
    for mark, vendor in _USER_AGENT_MARKS:
        if mark in lowered:
            return vendor
    return None
