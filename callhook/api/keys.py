"""/api/v1/tenants/{tenant}/api-keys: tenant API keys, shown once and stored hashed.

The admin key manages any tenant's keys, a tenant key its own tenant's. Revoking a key
takes effect at once on this hub: its cache of key lookups is cleared.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import ERRORS, Cursor, Limit, next_cursor
from callhook.api.models import ApiKeyCreate, ApiKeyCreated, ApiKeyPage
from callhook.errors import NotFound

router = APIRouter(tags=["api keys"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]


@router.get(
    "/tenants/{tenant}/api-keys",
    summary="List a tenant's API keys (never the keys themselves)",
    response_model=ApiKeyPage,
)
async def list_keys(
    request: Request,
    tenant: str,
    who: Who,
    cursor: Cursor = None,
    limit: Limit = 100,
    include_revoked: Annotated[bool, Query(description="list revoked keys too")] = False,
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    found = await hub.store.directory.list_api_keys(
        tenant, after=cursor or "", limit=limit, include_revoked=include_revoked
    )
    return {"api_keys": found, "next_cursor": next_cursor(found, "key_id", limit)}


@router.post(
    "/tenants/{tenant}/api-keys",
    summary="Create an API key for the tenant; the key is in this response only",
    status_code=201,
    response_model=ApiKeyCreated,
)
async def create_key(
    request: Request, tenant: str, who: Who, body: ApiKeyCreate | None = None
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    name = body.name if body is not None else ""
    created = await hub.store.directory.create_api_key(tenant, name)
    if created is None:
        raise NotFound(f"no tenant {tenant!r}", code="unknown-tenant")
    return created


@router.delete(
    "/tenants/{tenant}/api-keys/{key_id}",
    summary="Revoke an API key (immediately)",
    status_code=204,
    response_class=Response,
)
async def revoke_key(request: Request, tenant: str, key_id: str, who: Who) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    if not await hub.store.directory.revoke_api_key(key_id, tenant):
        raise NotFound(f"no API key {key_id!r} in tenant {tenant!r}", code="not-found")
    hub.forget_api_keys()
    return Response(status_code=204)
