"""GET /api/v1/tenants/{tenant}/events: the durable log, read by seq."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.events import KEY_TOPIC, TOPICS
from callhook.errors import BadRequest

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
    since_seq: Annotated[int, Query(ge=0, description="return events with seq > this")] = 0,
    topic: Annotated[str | None, Query(description="e.g. extension_events")] = None,
    key: Annotated[str | None, Query(description="e.g. call_start")] = None,
    extension: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    if topic is not None and topic not in TOPICS:
        raise BadRequest(f"unknown topic {topic!r}", field="topic")
    if key is not None and key not in KEY_TOPIC:
        raise BadRequest(f"unknown key {key!r}", field="key")
    bodies = await hub.log.read(
        tenant, since_seq=since_seq, limit=limit, topic=topic, key=key, extension=extension
    )
    # Stored bodies are already the wire JSON: join them instead of re-encoding.
    return Response(b"[" + b",".join(bodies) + b"]", media_type="application/json")
