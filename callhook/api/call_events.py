"""/api/v1/tenants/{tenant}/call-events: VoipNow-style Call Events rules (docs/webhooks.md).

A rule belongs to an extension: on `dial_in`, `dial_out`, `answer_incoming`,
`answer_outgoing`, `hangup` (or any canonical event key) the hub sends a GET or POST with
VoipNow's default parameters to the rule's URL ("make request to"). A disabled rule sends
nothing. With a `secret`, requests are signed like JSON webhooks (docs/webhooks.md).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field
from pydantic.json_schema import SkipJsonSchema

from callhook.api.auth import Principal, principal
from callhook.api.common import (
    ERRORS,
    ExtensionFilter,
    Model,
    NotNull,
    Number,
    next_cursor,
    page_by_id,
    seq_query,
)
from callhook.api.deliveries import endpoint_routes, service
from callhook.api.webhooks import Secret, Url
from callhook.deliver import control
from callhook.fields import CALL_EVENT_NAMES, check_call_event, upper_method

router = APIRouter(tags=["call events"], responses=ERRORS)
Who = Annotated[Principal, Depends(principal)]

EventName = Annotated[
    str,
    Field(
        max_length=64,
        description=f"{', '.join(CALL_EVENT_NAMES)}, or an event key",
        examples=["dial_in"],
    ),
    AfterValidator(check_call_event),
]
# GET or POST, in any case (VoipNow's page writes them upper case; people type `get`).
Method = Annotated[Literal["GET", "POST"], BeforeValidator(upper_method)]
CustomData = Annotated[
    dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=1024)]],
    Field(max_length=32, description="extra parameters added to every request"),
]


class RuleCreate(Model):
    """A Call Events rule (VoipNow's fields: request method, make request to, status, notes)."""

    extension: Number
    event: EventName
    method: Method = "POST"
    url: Url = Field(description="may hold $variables: $CallerIDNum, $local, $remote, ...")
    enabled: bool = True
    notes: Annotated[str, Field(max_length=500)] = ""
    format: Literal["form", "json"] = Field("form", description="POST body format")
    secret: Secret | None = Field(None, description="sign requests (Standard Webhooks)")
    custom_data: CustomData = {}


class RuleUpdate(Model):
    """Fields to change; omitted ones stay as they are. `null` clears `notes`, `secret` and
    `custom_data`; the other fields may not be empty (422)."""

    event: Annotated[EventName | SkipJsonSchema[None], NotNull] = None
    enabled: Annotated[bool | SkipJsonSchema[None], NotNull] = Field(
        None, description="same as enable / disable"
    )
    method: Annotated[Method | SkipJsonSchema[None], NotNull] = None
    url: Annotated[Url | SkipJsonSchema[None], NotNull] = None
    notes: Annotated[str, Field(max_length=500)] | None = None
    format: Annotated[Literal["form", "json"] | SkipJsonSchema[None], NotNull] = None
    secret: Secret | None = Field(None, description="null: stop signing")
    custom_data: CustomData | None = None


class Rule(BaseModel):
    """A rule. `status`: enabled, failing, disabled (by the hub) or off (by you)."""

    id: str
    tenant: str
    extension: str
    event: str
    method: str
    url: str
    enabled: bool
    status: str
    disabled_reason: str | None
    failing_since: float | None
    notes: str
    format: str
    custom_data: dict[str, str]
    secrets: list[str] = Field(description="masked")
    source: str
    created_at: float
    updated_at: float


class RuleList(BaseModel):
    rules: list[Rule]
    next_cursor: str | None = None


def _fields(body: Model) -> dict[str, Any]:
    out = body.model_dump(exclude_unset=True)
    if "notes" in out and out["notes"] is None:
        out["notes"] = ""
    if "secret" in out:
        secret = out.pop("secret")
        out["secrets"] = (secret,) if secret else ()
    if "custom_data" in out:
        out["custom_data"] = tuple(sorted((out["custom_data"] or {}).items()))
    return out


@router.post("/tenants/{tenant}/call-events", status_code=201, response_model=Rule,
             summary="Create a Call Events rule")  # fmt: skip
async def create(request: Request, tenant: str, body: RuleCreate, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    ep, _secrets = await control.create(svc, tenant, "call_event", _fields(body))
    return ep.public()


@router.get("/tenants/{tenant}/call-events", response_model=RuleList, summary="List rules")
async def list_rules(
    request: Request,
    tenant: str,
    who: Who,
    extension: ExtensionFilter = None,
    cursor: Annotated[int, seq_query("the next_cursor of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    svc = service(request, who, tenant)
    eps = [
        e
        for e in svc.index.by_id.values()
        if e.tenant == tenant
        and e.kind == "call_event"
        and (extension is None or e.extension == extension)
    ]
    page = [e.public() for e in page_by_id(eps, cursor, limit)]
    return {"rules": page, "next_cursor": next_cursor(page, "id", limit)}


@router.get("/tenants/{tenant}/call-events/{endpoint_id}", response_model=Rule)
async def get_rule(request: Request, tenant: str, endpoint_id: str, who: Who) -> dict[str, Any]:
    svc = service(request, who, tenant)
    return control.owned(svc, tenant, "call_event", endpoint_id).public()


@router.patch("/tenants/{tenant}/call-events/{endpoint_id}", response_model=Rule)
async def update(
    request: Request, tenant: str, endpoint_id: str, body: RuleUpdate, who: Who
) -> dict[str, Any]:
    svc = service(request, who, tenant)
    return (await control.update(svc, tenant, "call_event", endpoint_id, _fields(body))).public()


@router.delete("/tenants/{tenant}/call-events/{endpoint_id}", status_code=204,
               summary="Delete a rule and its delivery log")  # fmt: skip
async def delete(request: Request, tenant: str, endpoint_id: str, who: Who) -> Response:
    svc = service(request, who, tenant)
    await control.delete(svc, tenant, "call_event", endpoint_id)
    return Response(status_code=204)


endpoint_routes(router, "call_event", "call-events")
