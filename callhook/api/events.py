"""/api/v1/tenants/{tenant}/events: read the durable log by seq; publish PBX events."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request, Response
from pydantic import ValidationError

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import ExtensionFilter, seq_query
from callhook.directory import Tenant
from callhook.errors import BadRequest, Unprocessable
from callhook.events import KEY_TOPIC, TOPICS, Event, sip_uri, unix_time
from callhook.schemas import SCHEMAS

router = APIRouter(tags=["events"])


@router.get(
    "/tenants/{tenant}/events",
    summary="Events of a tenant after a seq, oldest first",
    responses={200: {"description": "a JSON array of canonical events"}},
)
async def list_events(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    since_seq: Annotated[int, seq_query("return events with seq > this")] = 0,
    cursor: Annotated[
        int | None, seq_query("the same as since_seq (the X-Next-Cursor of the last page)")
    ] = None,
    topic: Annotated[str | None, Query(description="e.g. extension_events")] = None,
    key: Annotated[str | None, Query(description="e.g. call_start")] = None,
    extension: ExtensionFilter = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    if topic is not None and topic not in TOPICS:
        raise BadRequest(f"unknown topic {topic!r}", field="topic")
    if key is not None and key not in KEY_TOPIC:
        raise BadRequest(f"unknown key {key!r}", field="key")
    bodies = await hub.log.read(
        tenant,
        since_seq=since_seq if cursor is None else cursor,
        limit=limit,
        topic=topic,
        key=key,
        extension=extension,
    )
    # Stored bodies are already the wire JSON: join them instead of re-encoding. The body
    # stays a bare array (what every client of the log reads); the next page's cursor, the
    # last seq of a full page, travels in a header.
    headers = {}
    if len(bodies) == limit and bodies:
        headers["X-Next-Cursor"] = str(orjson.loads(bodies[-1])["seq"])
    return Response(b"[" + b",".join(bodies) + b"]", media_type="application/json", headers=headers)


@router.post(
    "/tenants/{tenant}/events",
    summary="Publish a canonical event (PBX or adapter); validated per topic/key; call events"
    " are correlated like phone reports (the reply lists what the hub emitted)",
    status_code=201,
    responses={422: {"description": "the body does not match the key's schema"}},
)
async def publish_event(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    body: Annotated[dict[str, Any], Body(description="a canonical event: event_type + fields")],
) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    key = body.get("event_type") or body.get("key")
    if not isinstance(key, str) or key not in SCHEMAS:
        raise Unprocessable(
            f"event_type must be one of {', '.join(sorted(SCHEMAS))}", field="event_type"
        )
    topic = body.get("topic")
    if topic is not None and topic != KEY_TOPIC[key]:
        raise Unprocessable(f"{key} belongs to topic {KEY_TOPIC[key]}", field="topic")
    fields = {k: v for k, v in body.items() if k not in _SERVER_FIELDS}
    try:
        model = SCHEMAS[key].model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        raise Unprocessable(err["msg"], field=field) from None
    values = model.model_dump(exclude_none=True)
    where = _nul_at(values)
    if where is not None:  # valid JSON (\u0000), but no text column can hold it
        raise Unprocessable("NUL characters (U+0000) are not allowed", field=where or None)
    event = published_event(hub.tenants[tenant], key, values)
    try:  # the log stores what orjson writes: no integer beyond 64 bits, no 255-deep nesting
        orjson.dumps(event.body)
    except orjson.JSONEncodeError as exc:
        raise Unprocessable(f"the event cannot be stored: {exc}") from None
    committed = await hub.pipeline.publish(event)
    out = [{"event_id": e.event_id, "seq": e.seq, "event_type": e.key} for e in committed]
    return Response(orjson.dumps({"events": out}), status_code=201, media_type="application/json")


def _nul_at(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (value or key) holding a NUL; None: none."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return path
            found = _nul_at(v, f"{path}.{k}" if path else k)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _nul_at(v, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


# Fields the hub owns: never taken from a publisher.
_SERVER_FIELDS = frozenset(
    {"event_type", "key", "topic", "seq", "event_id", "tenant_id", "tenant_name"}
)


def published_event(tenant: Tenant, key: str, fields: dict[str, Any]) -> Event:
    """A validated published event, addressed (extensions/queue) for routing."""
    body: dict[str, Any] = {**fields, "tenant_id": tenant.tenant_id, "tenant_name": tenant.name}
    body.setdefault("time", unix_time())
    extensions: list[str] = []
    for name in ("extension", "caller", "callee", "aor", "peer_aor"):
        value = fields.get(name)
        if isinstance(value, str):
            number = value.removeprefix("sip:").split("@", 1)[0]
            if tenant.is_extension(number) and number not in extensions:
                extensions.append(number)
            if name == "extension" and tenant.is_extension(number):
                body["extension"] = sip_uri(number, tenant.domain)
    queue = fields.get("queue") if isinstance(fields.get("queue"), str) else None
    return Event(
        tenant=tenant.name,
        key=key,
        body=body,
        extensions=tuple(extensions),
        queue=queue,
        session_id=fields.get("session_id"),
    )
