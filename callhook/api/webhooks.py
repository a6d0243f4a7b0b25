"""/api/v1/tenants/{tenant}/webhooks: signed JSON webhooks (Standard Webhooks).

The secret (`whsec_...`, made by the hub unless given) is returned in full once, on create
and on rotation; afterwards only a masked form. Rotation keeps the previous secret active
too, so receivers can switch over: each request then carries two signatures.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AfterValidator, BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from callhook import fields
from callhook.api.auth import Principal, principal
from callhook.api.common import (
    ERRORS,
    Model,
    NotNull,
    Number,
    next_cursor,
    page_by_id,
    seq_query,
)
from callhook.api.deliveries import endpoint_routes, service
from callhook.deliver import control, signing
from callhook.fields import SCHEDULE_MAX_DELAY, SCHEDULE_MAX_LEN

router = APIRouter(tags=["webhooks"], responses=ERRORS)
Who = Annotated[Principal, Depends(principal)]

# The URL rule itself (scheme, host, credentials) is applied with the SSRF check, so that
# a refused URL is a `target-refused` error naming why (deliver/control.py).
Url = Annotated[
    str,
    Field(min_length=8, max_length=fields.URL_MAX, examples=["https://crm.example.com/hook"]),
]
Secret = Annotated[
    str,
    Field(pattern=fields.SECRET_PATTERN, description=fields.SECRET_RULE),
    AfterValidator(fields.check_secret),
]
Schedule = Annotated[
    list[Annotated[float, Field(ge=0, le=SCHEDULE_MAX_DELAY)]],
    Field(min_length=1, max_length=SCHEDULE_MAX_LEN),
]
Topics = Annotated[
    list[Annotated[str, Field(max_length=64), AfterValidator(fields.check_topic)]],
    Field(max_length=64),
]
Keys = Annotated[
    list[Annotated[str, Field(max_length=64), AfterValidator(fields.check_key)]],
    Field(max_length=64),
]


class WebhookCreate(Model):
    """A JSON webhook: which events (empty filters: all), where, and how to retry."""

    url: Url
    topics: Topics = Field([], description="e.g. extension_events, cdr_events; empty: all")
    keys: Keys = Field([], description="e.g. call_start; empty: all keys of the topics")
    extensions: Annotated[list[Number], Field(max_length=10_000)] = Field(
        [], description="only events concerning these extensions; empty: all"
    )
    enabled: bool = True
    schedule: Schedule | None = Field(None, description="retry delays in seconds")
    description: Annotated[str, Field(max_length=500)] = ""
    secret: Secret | None = Field(None, description="default: a new random secret")


class WebhookUpdate(Model):
    """Fields to change; omitted ones stay as they are. `null` clears the filters (all
    events), `schedule` (the [delivery] schedule) and `description`; `url` and `enabled`
    may not be empty (422)."""

    url: Annotated[Url | SkipJsonSchema[None], NotNull] = None
    enabled: Annotated[bool | SkipJsonSchema[None], NotNull] = Field(
        None, description="same as enable / disable"
    )
    topics: Topics | None = None
    keys: Keys | None = None
    extensions: Annotated[list[Number], Field(max_length=10_000)] | None = None
    schedule: Schedule | None = None
    description: Annotated[str, Field(max_length=500)] | None = None


class Webhook(BaseModel):
    """A webhook. `status`: enabled, failing, disabled (by the hub) or off (by you)."""

    id: str
    tenant: str
    url: str
    enabled: bool
    status: str
    disabled_reason: str | None
    failing_since: float | None
    secrets: list[str] = Field(description="masked")
    source: str
    topics: list[str]
    keys: list[str]
    extensions: list[str]
    schedule: list[float] | None
    description: str
    created_at: float
    updated_at: float


class WebhookCreated(Webhook):
    secret: str = Field(description="the signing secret, shown this once")


class WebhookList(BaseModel):
    webhooks: list[Webhook]
    next_cursor: str | None = None


class SecretRotated(BaseModel):
    secret: str = Field(description="the new secret, shown this once")
    secrets: list[str] = Field(description="active secrets, masked: the new one and the last")


def _fields(body: Model) -> dict[str, Any]:
    data = body.model_dump(exclude_unset=True)
    out: dict[str, Any] = {}
    for k, v in data.items():
        if k in ("topics", "keys", "extensions"):
            out[k] = frozenset(v or ())  # null, like [], means "all"
        elif k == "schedule":
            out[k] = tuple(v) if v is not None else None  # null: the [delivery] schedule
        elif k == "description":
            out[k] = v or ""  # null: no description
        elif k == "secret":
            out["secrets"] = (v,) if v else ()
        else:
            out[k] = v
    return out


@router.post("/tenants/{tenant}/webhooks", status_code=201, response_model=WebhookCreated,
             summary="Create a webhook")  # fmt: skip
async def create(request: Request, tenant: str, body: WebhookCreate, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    ep, secrets = await control.create(svc, tenant, "webhook", _fields(body))
    return {**ep.public(), "secret": secrets[0]}


@router.get("/tenants/{tenant}/webhooks", response_model=WebhookList, summary="List webhooks")
async def list_webhooks(
    request: Request,
    tenant: str,
    who: Who,
    cursor: Annotated[int, seq_query("the next_cursor of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    svc = service(request, who, tenant)
    eps = [e for e in svc.index.by_id.values() if e.tenant == tenant and e.kind == "webhook"]
    page = [e.public() for e in page_by_id(eps, cursor, limit)]
    return {"webhooks": page, "next_cursor": next_cursor(page, "id", limit)}


@router.get("/tenants/{tenant}/webhooks/{endpoint_id}", response_model=Webhook)
async def get_webhook(request: Request, tenant: str, endpoint_id: str, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    return control.owned(svc, tenant, "webhook", endpoint_id).public()


@router.patch("/tenants/{tenant}/webhooks/{endpoint_id}", response_model=Webhook)
async def update(
    request: Request, tenant: str, endpoint_id: str, body: WebhookUpdate, who: Who
) -> dict[str, Any]:
    svc = service(request, who, tenant)
    return (await control.update(svc, tenant, "webhook", endpoint_id, _fields(body))).public()


@router.delete("/tenants/{tenant}/webhooks/{endpoint_id}", status_code=204,
               summary="Delete a webhook and its delivery log")  # fmt: skip
async def delete(request: Request, tenant: str, endpoint_id: str, who: Who) -> Response:
    svc = service(request, who, tenant)
    await control.delete(svc, tenant, "webhook", endpoint_id)
    return Response(status_code=204)


@router.post("/tenants/{tenant}/webhooks/{endpoint_id}/secret", response_model=SecretRotated,
             summary="Rotate the secret (the previous one stays valid too)")  # fmt: skip
async def rotate(request: Request, tenant: str, endpoint_id: str, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    ep = control.owned(svc, tenant, "webhook", endpoint_id)
    new = signing.new_secret()
    kept = (new, *ep.secrets[:1])
    ep = await control.update(svc, tenant, "webhook", endpoint_id, {"secrets": kept})
    return {"secret": new, "secrets": [signing.mask(s) for s in ep.secrets]}


endpoint_routes(router, "webhook", "webhooks")
