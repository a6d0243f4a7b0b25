"""The URL to paste on a phone for each event, per vendor (pure: values in, values out).

Grandstream phones take their guides' format, `HOST/token=T&event=Incoming%20Call&mac=$mac`:
no scheme and no `?`, so the pairs arrive in the request path. Yealink, Fanvil
and Snom take an ordinary URL, so we send them to `/ingest/TOKEN/<their event name>` with
the variables in the query and an explicit `vendor=` (docs/vendors.md), which tells the parser
how that vendor spells and orients `$local`/`$remote`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from callhook.fields import PHONE_URL_VENDORS
from callhook.ingest.vendors import VENDOR_EVENT_NAMES

# Vendors a phone URL can be made for: the list of callhook/fields.py, which the API uses too.
URL_VENDORS: tuple[str, ...] = PHONE_URL_VENDORS

# Yealink's `action_url.*` values hold at most 511 characters (Yealink's admin guide).
MAX_URL_LENGTH = {"yealink": 511}

_CALL = ("mac", "local", "remote", "display_remote", "call_id", "calldirection")
_DEVICE = ("mac", "local")
# The variables worth sending with each canonical phone event.
EVENT_VARIABLES: dict[str, tuple[str, ...]] = {
    "incoming_call": _CALL,
    "outgoing_call": _CALL,
    "establish_call": _CALL,
    "terminate_call": (*_CALL, "duration"),
    "missed_call": _CALL,
    "hold_call": _CALL,
    "resume_call": _CALL,
    "blind_transfer": _CALL,
    "attended_transfer": _CALL,
    "off_hook": _DEVICE,
    "on_hook": _DEVICE,
    "dnd_on": _DEVICE,
    "dnd_off": _DEVICE,
    "forward_on": _DEVICE,
    "forward_off": _DEVICE,
    "syslog_on": _DEVICE,
    "syslog_off": _DEVICE,
    "booting_completed": (
        "mac",
        "phone_ip",
        "product",
        "program_version",
        "hardware_version",
        "language",
    ),
    "registration": ("mac", "phone_ip", "local", "display_local", "active_user", "active_host"),
    "sign_off": ("mac", "phone_ip", "local", "active_user", "active_host"),
}

# How each vendor spells a variable, where it differs from the canonical name (docs/vendors.md,
# "Variables"). None: the vendor has no such variable, so the pair is left out.
VENDOR_VARIABLES: dict[str, dict[str, str | None]] = {
    "grandstream": {},
    "yealink": {
        "phone_ip": "ip",
        "product": "model",
        "program_version": "firmware",
        "hardware_version": None,
        "language": None,
        "calldirection": None,
        "display_local": None,
    },
    "fanvil": {
        "phone_ip": "ip",
        "product": "model",
        "program_version": "firmware",
        "hardware_version": None,
        "language": None,
        "calldirection": None,
        "display_local": None,
    },
    "snom": {
        "call_id": "call-id",
        "product": None,
        "program_version": None,
        "hardware_version": None,
        "language": None,
        "calldirection": None,
        "display_local": None,
    },
}

# Models whose guide spells variables its own way, over the vendor's spelling. Grandstream's
# GXV3240/GXV3275 ActionURL guide lists `$call-id`; the GXV3370/3350/3380 Event
# Notification guide `$call_id`.
MODEL_VARIABLES: dict[str, dict[str, dict[str, str | None]]] = {
    "grandstream": {
        "GXV3370": {},
        "GXV3350": {},
        "GXV3380": {},
        "GXV3240": {"call_id": "call-id"},
        "GXV3275": {"call_id": "call-id"},
    },
}


def models(vendor: str) -> tuple[str, ...]:
    """The models of `vendor` whose own variable names `--model` can ask for."""
    return tuple(MODEL_VARIABLES.get(vendor, {}))


def _model(vendor: str, model: str) -> dict[str, str | None]:
    if not model:
        return {}
    known = MODEL_VARIABLES.get(vendor, {})
    for name, spelled in known.items():
        if name.lower() == model.strip().lower():
            return spelled
    choices = ", ".join(known) or "none"
    raise PhoneUrlError(f"model {model!r}: {vendor} models with their own names: {choices}")


_HOST_RE = re.compile(r"^[A-Za-z0-9._~:\[\]%-]+(/[A-Za-z0-9._~%/-]*)?$")


class PhoneUrlError(ValueError):
    """A bad vendor or host; the message names which."""


@dataclass(frozen=True, slots=True)
class PhoneUrl:
    """One event's URL: the canonical event, the vendor's name for it, and what to paste."""

    event: str
    vendor_event: str
    setting: str  # where it goes: a config key (Yealink, Snom) or the web UI field label
    url: str
    too_long: bool = False


def split_host(host: str) -> tuple[str, str]:
    """`https://hub:8443/x/` -> ("https", "hub:8443/x"); no scheme means http."""
    text = host.strip()
    scheme = "http"
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        if scheme not in ("http", "https"):
            raise PhoneUrlError(f"host {host!r}: the scheme must be http or https")
    text = text.rstrip("/")
    if not text or len(text) > 255 or not _HOST_RE.match(text):
        raise PhoneUrlError(f"host {host!r}: expected HOST[:PORT][/PATH], e.g. 192.0.2.10:8080")
    return scheme, text


def _pairs(vendor: str, event: str, model: str = "") -> str:
    spelled = {**VENDOR_VARIABLES[vendor], **_model(vendor, model)}
    out = []
    for var in EVENT_VARIABLES[event]:
        name = spelled.get(var, var)
        if name is not None:
            out.append(f"{'call_id' if var == 'call_id' else name}=${name}")
    return "&".join(out)


def phone_url(vendor: str, event: str, host: str, token: str, model: str = "") -> PhoneUrl:
    """The URL for one canonical `event` of `vendor`'s phones (of `model`, when its guide
    names variables its own way)."""
    if vendor not in URL_VENDORS:
        raise PhoneUrlError(f"vendor {vendor!r}: expected one of {', '.join(URL_VENDORS)}")
    names = VENDOR_EVENT_NAMES[vendor]
    if event not in names:
        raise PhoneUrlError(f"{vendor} phones have no {event!r} event")
    scheme, where = split_host(host)
    name = names[event]
    pairs = _pairs(vendor, event, model)
    if vendor == "grandstream":
        url = f"{where}/token={token}&event={quote(name)}&{pairs}"
        setting = name
    else:
        url = f"{scheme}://{where}/ingest/{token}/{quote(name)}?{pairs}&vendor={vendor}"
        setting = f"action_url.{name}" if vendor == "yealink" else name
    too_long = len(url) > MAX_URL_LENGTH.get(vendor, 1 << 30)
    return PhoneUrl(event, name, setting, url, too_long)


def phone_urls(vendor: str, host: str, token: str, model: str = "") -> list[PhoneUrl]:
    """Every event `vendor`'s phones can report, in Grandstream's order."""
    if vendor not in URL_VENDORS:
        raise PhoneUrlError(f"vendor {vendor!r}: expected one of {', '.join(URL_VENDORS)}")
    _model(vendor, model)  # an unknown model is an error even before any URL is made
    return [phone_url(vendor, ev, host, token, model) for ev in VENDOR_EVENT_NAMES[vendor]]


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def provisioning(vendor: str, urls: list[PhoneUrl]) -> str:
    """A snippet for the vendor's provisioning files, or a labelled list for its web UI.

    Yealink: `action_url.<event> = URL` lines of a `.cfg` file. Snom: a `<phone-settings>`
    XML document. Grandstream and Fanvil: one `Label = URL` line per web UI field (their
    provisioning keys for these fields are not public).
    """
    if vendor == "yealink":
        lines = ["#!version:1.0.0.1", *(f"{u.setting} = {u.url}" for u in urls)]
    elif vendor == "snom":
        body = [f'  <{u.setting} perm="">{_xml(u.url)}</{u.setting}>' for u in urls]
        lines = ['<?xml version="1.0" encoding="utf-8"?>', "<phone-settings>", *body]
        lines.append("</phone-settings>")
    else:
        where = "Maintenance -> Event Notify" if vendor == "grandstream" else "Action URL"
        lines = [f"# {vendor}: web UI, {where}; paste each URL into its field"]
        lines.extend(f"{u.setting} = {u.url}" for u in urls)
    return "\n".join(lines) + "\n"
