"""Delivery log and endpoint control, shared by webhooks and Call Events rules.

Per endpoint (`/tenants/{t}/webhooks/{id}/...` and `/tenants/{t}/call-events/{id}/...`):
`deliveries` (filter by status, since), `replay` (a time range), `enable`, `disable`.
Per delivery (`/tenants/{t}/deliveries/{id}`): show with every attempt, `redeliver`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import ERRORS, Model, seq_query
from callhook.deliver import control
from callhook.deliver.rules import Kind
from callhook.deliver.service import DeliveryService
from callhook.errors import NotFound

Who = Annotated[Principal, Depends(principal)]
Status = Literal["pending", "succeeded", "failed", "held"]


class Delivery(BaseModel):
    """One event on its way to one endpoint. `id` is the Call Events `EventID`."""

    id: str
    endpoint_id: str
    seq: int
    event_id: str = Field(description="the event's id: `webhook-id` of JSON webhooks")
    event_type: str
    session_id: str | None
    status: Status
    attempts: int
    next_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    updated_at: float


class AttemptOut(BaseModel):
    """One attempt: when, the HTTP status (none on timeout or connection error), how long."""

    n: int
    at: float
    status_code: int | None
    latency_ms: float | None
    error: str | None
    response: str = Field(description="the first 2 KB of the response body")


class DeliveryDetail(Delivery):
    attempt_log: list[AttemptOut]


class DeliveryPage(BaseModel):
    deliveries: list[Delivery]
    next_before_seq: int | None = Field(description="pass as `before_seq` for the next page")


class Replay(Model):
    """Requeue the endpoint's deliveries created in [since, until] with these statuses."""

    since: float = Field(description="Unix time")
    until: float | None = Field(None, description="Unix time; default now")
    statuses: list[Literal["failed", "held", "succeeded"]] = ["failed", "held"]


class Replayed(BaseModel):
    queued: int


def service(request: Request, who: Principal, tenant: str) -> DeliveryService:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    svc: DeliveryService = hub.delivery
    return svc


def endpoint_routes(router: APIRouter, kind: Kind, plural: str) -> None:
    """Add the per-endpoint delivery routes under `/tenants/{tenant}/{plural}/{endpoint_id}`."""
    base = f"/tenants/{{tenant}}/{plural}/{{endpoint_id}}"

    @router.get(f"{base}/deliveries", summary="Deliveries of an endpoint, newest first",
                response_model=DeliveryPage)  # fmt: skip
    async def list_deliveries(
        request: Request,
        tenant: str,
        endpoint_id: str,
        who: Who,
        status: Annotated[Status | None, Query()] = None,
        since: Annotated[float | None, Query(description="created at or after (Unix time)")] = None,
        before_seq: Annotated[int | None, seq_query("next_before_seq of the previous page")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        svc = service(request, who, tenant)
        control.owned(svc, tenant, kind, endpoint_id)
        rows = await svc.store.list_deliveries(
            endpoint_id, status=status, since=since, before_seq=before_seq, limit=limit
        )
        more = rows[-1]["seq"] if len(rows) == limit else None
        return {"deliveries": rows, "next_before_seq": more}

    @router.post(f"{base}/replay", summary="Replay a time range", response_model=Replayed)
    async def replay(
        request: Request, tenant: str, endpoint_id: str, body: Replay, who: Who
    ) -> dict[str, Any]:
        svc = service(request, who, tenant)
        n = await control.replay(
            svc, tenant, kind, endpoint_id, since=body.since, until=body.until,
            statuses=list(body.statuses),
        )  # fmt: skip
        return {"queued": n}

    @router.post(f"{base}/enable", summary="Enable (also after the hub disabled it)")
    async def enable(request: Request, tenant: str, endpoint_id: str, who: Who) -> dict[str, Any]:
        svc = service(request, who, tenant)
        return (await control.set_enabled(svc, tenant, kind, endpoint_id, True)).public()

    @router.post(f"{base}/disable", summary="Disable: nothing is sent; pending ones are held")
    async def disable(request: Request, tenant: str, endpoint_id: str, who: Who) -> dict[str, Any]:
        svc = service(request, who, tenant)
        return (await control.set_enabled(svc, tenant, kind, endpoint_id, False)).public()


router = APIRouter(tags=["deliveries"], responses=ERRORS)


@router.get("/tenants/{tenant}/deliveries/{delivery_id}", summary="A delivery and its attempts",
            response_model=DeliveryDetail)  # fmt: skip
async def get_delivery(request: Request, tenant: str, delivery_id: str, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    row = await svc.store.get_delivery(tenant, delivery_id)
    if row is None:
        raise NotFound(f"no delivery {delivery_id!r}", code="unknown-delivery")
    return row


@router.post("/tenants/{tenant}/deliveries/{delivery_id}/redeliver", status_code=202,
             summary="Send a delivery again (same webhook-id / EventID)")  # fmt: skip
async def redeliver(request: Request, tenant: str, delivery_id: str, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    return await control.redeliver(svc, tenant, delivery_id)
