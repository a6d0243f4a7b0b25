"""Presence, active calls and devices: the correlator's live view and the phones seen."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import ERRORS, next_cursor, seq_query
from callhook.errors import NotFound

router = APIRouter(tags=["presence"])


@router.get("/tenants/{tenant}/extensions/{number}/state", summary="Presence of an extension")
async def extension_state(
    request: Request, tenant: str, number: str, who: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    configured = number in hub.tenants[tenant].extensions
    live = await hub.state.of(tenant)
    if not configured and number not in live.reported_extensions(tenant):
        raise NotFound(f"no extension {number!r} in tenant {tenant!r}", code="unknown-extension")
    state = live.presence(tenant, number)
    return {"extension": number, **state, "configured": configured}


@router.get("/tenants/{tenant}/presence", summary="Presence of every extension of a tenant")
async def tenant_presence(
    request: Request, tenant: str, who: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    declared = hub.tenants[tenant].extensions
    # Extensions that phones report but the directory does not declare are shown too
    # (`configured: false`): a phone set up before its extension is not invisible.
    live = await hub.state.of(tenant)
    exts = sorted({*declared, *live.reported_extensions(tenant)})
    return {
        "extensions": [
            {"extension": n, **live.presence(tenant, n), "configured": n in declared} for n in exts
        ]
    }


@router.get("/tenants/{tenant}/calls", summary="Calls (sessions); active=true for open ones")
async def calls(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    active: Annotated[bool, Query(description="only open calls (the only kind kept live)")] = True,
    cursor: Annotated[int, seq_query("the next_cursor of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    if not active:
        raise NotFound("ended calls are CDRs: use GET .../cdrs", code="use-cdrs")
    # Oldest first by session_id (numeric, increasing), like every list: limit and cursor.
    live = await hub.state.of(tenant)
    found = sorted(
        (c for c in live.active_calls(tenant) if int(c["session_id"]) > cursor),
        key=lambda c: int(c["session_id"]),
    )[:limit]
    return {"calls": found, "next_cursor": next_cursor(found, "session_id", limit)}


@router.post(
    "/tenants/{tenant}/calls/{session_id}/end",
    summary="End a stuck call by hand",
    responses=ERRORS,
    description=(
        "Ends an open call as if every phone hung up now: ringing phones get"
        " `target_noanswer`, then the call's closing event (`call_ended`, or `call_noanswer`"
        " when nobody answered) and its `call_cdr`, with `end_reason` `ended_by_api`. For a"
        " call whose phones never reported its end (a phone rebooted mid-call)."
    ),
)
async def end_call(
    request: Request,
    tenant: str,
    session_id: Annotated[str, Path(max_length=32, pattern=r"^[0-9]+$")],
    who: Annotated[Principal, Depends(principal)],
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    events = await hub.pipeline.end_call(tenant, session_id)
    if events is None:
        raise NotFound(f"no open call {session_id!r} in tenant {tenant!r}", code="unknown-call")
    return {
        "session_id": session_id,
        "events": [{"event_type": e.key, "seq": e.seq, "event_id": e.event_id} for e in events],
    }


@router.get("/tenants/{tenant}/devices", summary="Phones seen on ingest, by MAC")
async def devices(
    request: Request, tenant: str, who: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    return {"devices": await hub.store.queries.devices(tenant)}
