"""Simulated phones on the wire: each step becomes the request its vendor's phone would send.

Dialects (docs/vendors.md):
- Grandstream (the reference): the URL is typed without scheme or `?`, so the pairs arrive in
  the path: `GET /token=T&event=Incoming%20Call&mac=...&local=101&remote=... HTTP/1.1`;
  bare numbers, the vendor's event names (`VENDOR_EVENT_NAMES`).
- Yealink, Fanvil: `GET /ingest/T/<event>?vendor=...&ip=...&model=...`; `$local`/`$remote`
  are SIP URIs, `$remote` the other party.
- Snom: `GET /ingest/T/<setting>?vendor=snom&call-id=...`; SIP URIs, and `$local` is always
  the callee, `$remote` always the caller, so a phone that placed the call swaps them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from callhook.ingest.vendors import VENDOR_EVENT_NAMES
from callhook.simulate.http import Connection, Endpoint, HttpError
from callhook.simulate.model import SimPhone, Step

SIP_HOST = "pbx.local"  # the host part of the SIP URIs that Yealink and Snom phones send
_DEVICE_EVENTS = frozenset({"registration", "sign_off", "booting_completed"})
# Variables each dialect spells its own way (docs/vendors.md, "Variables").
_SPELLING: dict[str, dict[str, str]] = {
    "grandstream": {},
    "yealink": {"phone_ip": "ip", "product": "model", "program_version": "firmware"},
    "fanvil": {"phone_ip": "ip", "product": "model", "program_version": "firmware"},
    "snom": {"call_id": "call-id"},
}
_URI_FIELDS = frozenset({"local", "remote"})


def user_agent(phone: SimPhone) -> str:
    """The User-Agent header the phone's firmware sends."""
    name = {"grandstream": "Grandstream", "yealink": "Yealink", "snom": "snom", "fanvil": "Fanvil"}
    sep = "/" if phone.vendor == "snom" else " "
    return f"{name.get(phone.vendor, phone.vendor)} {phone.model}{sep}{phone.firmware}"


def request_target(phone: SimPhone, token: str, step: Step, placed: set[str]) -> str:
    """The request target (path and query) of `step` as `phone`'s vendor sends it.

    `placed` holds the call ids of calls this phone dialled; Snom needs it to swap
    `$local`/`$remote` (it updates it on Outgoing Call).
    """
    values: dict[str, str] = {"mac": phone.mac, "local": phone.extension}
    if step.event in _DEVICE_EVENTS:
        values.update(phone_ip=phone.ip, product=phone.model, program_version=phone.firmware)
    values.update(step.variables)
    name = VENDOR_EVENT_NAMES[phone.vendor][step.event]
    if phone.vendor == "grandstream":
        pairs = {"token": token, "event": name, **values}
        return "/" + _encode(pairs)
    call_id = values.get("call_id", "")
    if phone.vendor == "snom":
        if step.event == "outgoing_call" and call_id:
            placed.add(call_id)
        if call_id in placed:  # Snom: $local is the callee, $remote the caller
            values["local"], values["remote"] = values.get("remote", ""), values["local"]
            if "display_remote" in values:
                values["display_local"] = values.pop("display_remote")
    spelling = _SPELLING[phone.vendor]
    sent = {"vendor": phone.vendor}
    for key, value in values.items():
        if key in _URI_FIELDS and value:
            value = f"sip:{value}@{SIP_HOST}"
        sent[spelling.get(key, key)] = value
    return f"/ingest/{quote(token, safe='')}/{quote(name, safe='')}?{_encode(sent)}"


def _encode(pairs: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in pairs.items())


Record = Callable[[Step, float, int | None, bytes, str], Awaitable[None]]


class PhoneRunner:
    """Sends one phone's steps in order, each at its time, over one keep-alive connection."""

    def __init__(
        self,
        phone: SimPhone,
        steps: list[Step],
        endpoint: Endpoint,
        token: str,
        speed: float,
        timeout: float = 10.0,
    ) -> None:
        self.phone = phone
        self.steps = steps
        self.token = token
        self.speed = speed
        self.conn = Connection(endpoint, user_agent(phone), timeout)
        self._placed: set[str] = set()

    async def run(self, start: float, record: Record, stop: asyncio.Event) -> None:
        """Send every step at `start + at / speed` (monotonic clock) until `stop` is set.

        `record(step, lag, status, body, error)` is awaited after each request; `status` is
        None when the request failed (`error` says why)."""
        try:
            for step in self.steps:
                due = start + step.at / self.speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop.is_set():
                    return
                target = request_target(self.phone, self.token, step, self._placed)
                lag = max(0.0, time.monotonic() - due)
                try:
                    status, body = await self.conn.get(target)
                except HttpError as exc:
                    await record(step, lag, None, b"", str(exc))
                    continue
                await record(step, lag, status, body, "")
        finally:
            await self.conn.close()
