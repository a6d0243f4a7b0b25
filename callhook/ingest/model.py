"""Values passed from the Action URL parser to the rest of the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

# The 20 Grandstream phone events (Grandstream's Event Notification guide), by canonical name.
PHONE_EVENTS: tuple[str, ...] = (
    "incoming_call",
    "outgoing_call",
    "establish_call",
    "terminate_call",
    "off_hook",
    "on_hook",
    "missed_call",
    "dnd_on",
    "dnd_off",
    "forward_on",
    "forward_off",
    "hold_call",
    "resume_call",
    "syslog_on",
    "syslog_off",
    "booting_completed",
    "blind_transfer",
    "attended_transfer",
    "registration",
    "sign_off",
)

# The 15 Grandstream variables (Grandstream's Event Notification guide), by canonical name.
VARIABLES: tuple[str, ...] = (
    "phone_ip",
    "mac",
    "product",
    "program_version",
    "hardware_version",
    "language",
    "local",
    "display_local",
    "remote",
    "display_remote",
    "call_id",
    "active_user",
    "active_host",
    "duration",
    "calldirection",
)


# Not frozen: built for every phone request, and a frozen dataclass's __init__ is about
# five times slower (it sets each field through object.__setattr__). Nothing changes them.
@dataclass(slots=True)
class ParsedRequest:
    """What an Action URL request says, before the tenant is resolved.

    `event` is a canonical name from PHONE_EVENTS, or None when the request named no event
    (`event_name` is None) or an unrecognised one (`event_name` holds it as sent).
    `variables` holds canonical variable names with normalised values: absent and
    unsubstituted (`$name`, `$$NAME$$`) values are left out; `local` is always this phone's
    own number and `remote` the other party, whatever the vendor's convention.
    `pairs` holds every decoded pair as sent (for raw storage), minus the token.
    """

    token: str | None
    event_name: str | None
    event: str | None
    variables: dict[str, str]
    pairs: dict[str, str]
    vendor: str = "grandstream"
    hints: tuple[str, ...] = ()


@dataclass(slots=True)  # not frozen, as ParsedRequest: one per phone request
class PhoneEvent:
    """One phone's report of one event, for one tenant, as the normaliser receives it."""

    tenant: str
    event: str | None  # canonical phone event; None: unrecognised, stored raw
    variables: dict[str, str]
    pairs: dict[str, str] = field(default_factory=dict)
    event_name: str | None = None
    source_ip: str = ""
    received_at: float = 0.0
    vendor: str = "grandstream"
    hints: tuple[str, ...] = ()
