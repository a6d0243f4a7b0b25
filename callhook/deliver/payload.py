"""The HTTP request for one delivery attempt (pure): method, URL, headers, body.

JSON webhooks: POST of the event's wire JSON, `webhook-id` = the event's `event_id`.
Call Events: VoipNow's parameters as a query string (GET, merged with any query already
in the URL), a form body or JSON (POST); `webhook-id` = `EventID` = the delivery id, so
both stay the same across retries. Signatures cover the body, or for a GET the query
string (there is no body), and are sent only when the endpoint has a secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from callhook import __version__
from callhook.deliver import call_events, signing
from callhook.deliver.rules import Endpoint

USER_AGENT = f"callhook/{__version__} (webhooks)"


@dataclass(slots=True)  # not frozen: built for every attempt, frozen init is slower
class Request:
    """Everything the sender needs; built fresh for each attempt (new timestamp)."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


@dataclass(slots=True)
class Directory:
    """What the payload may ask about the tenant's numbering plan."""

    display_name: Callable[[str], str] = lambda _n: ""
    is_extension: Callable[[str], bool] = lambda _n: False
    extended_prefix: str = ""  # VoipNow extended numbers (`0003*101`), "" for plain ones


def webhook(ep: Endpoint, event_id: str, wire: bytes, timestamp: int) -> Request:
    """A Standard Webhooks POST of the canonical event."""
    headers = {"content-type": "application/json", "user-agent": USER_AGENT}
    headers.update(signing.headers(ep.signing_keys, event_id, timestamp, wire))
    return Request("POST", ep.url, headers, wire)


def call_event_values(
    ep: Endpoint,
    delivery_id: str,
    body: Mapping[str, Any],
    involved: tuple[str, ...],
    context: Mapping[str, Any],
    directory: Directory,
) -> tuple[dict[str, str], dict[str, str]]:
    """(request parameters, URL variables) for one Call Events request.

    `context["call"]`: what the outbox knew of the call's parties that this event's body
    does not say (a call_hold has no caller, a call_ended no caller name).
    """
    call = context.get("call")
    if call:
        body = {**call, **{k: v for k, v in body.items() if v or k not in call}}
    flow = call_events.flow(ep.event, ep.extension, body, involved) or "IN"
    values = call_events.params(
        ep.event,
        flow,
        body,
        event_id=delivery_id,
        was_answered=bool(context.get("answered")),
        extension=ep.extension,
        display_name=directory.display_name,
        is_extension=directory.is_extension,
        extended_prefix=directory.extended_prefix,
    )
    variables = call_events.url_variables(ep.extension, values, body, directory.display_name)
    # custom_data is added to every request; VoipNow's parameters keep their meaning.
    sent = {k: v for k, v in ep.custom_data if k not in values}
    sent.update(values)
    return sent, variables


def call_event(
    ep: Endpoint,
    delivery_id: str,
    body: Mapping[str, Any],
    involved: tuple[str, ...],
    context: Mapping[str, Any],
    timestamp: int,
    directory: Directory,
) -> Request:
    """A VoipNow-style Call Events request."""
    values, variables = call_event_values(ep, delivery_id, body, involved, context, directory)
    url = call_events.expand_url(ep.url, variables)
    url = url.split("#", 1)[0]
    headers = {"user-agent": USER_AGENT}
    data: bytes | None
    if ep.method == "GET":
        existing = urlsplit(url).query
        url = f"{url}{'&' if existing else '' if url.endswith('?') else '?'}{urlencode(values)}"
        data = None
        signed = urlsplit(url).query.encode()  # what the receiver sees after the `?`
    else:
        if ep.format == "json":
            data = orjson.dumps(values)
            headers["content-type"] = "application/json"
        else:
            data = urlencode(values).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        signed = data
    if ep.signing_keys:
        headers.update(signing.headers(ep.signing_keys, delivery_id, timestamp, signed))
    return Request(ep.method, url, headers, data)
