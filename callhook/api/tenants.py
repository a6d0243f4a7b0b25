"""/api/v1/tenants: create, list, read, change and delete tenants; rotate ingest tokens.

Creating, listing, changing and deleting tenants needs the admin key; a tenant key may
read its own tenant and rotate its own ingest token. Every change is written with
`source='api'` (or keeps `source='config'`), then the hub reloads its directory.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from callhook import security
from callhook.api.auth import Principal, hub_of, principal, require_admin, require_tenant
from callhook.api.common import ERRORS, Cursor, Limit, check_outcome, next_cursor
from callhook.api.models import IngestToken, Tenant, TenantCreate, TenantPage, TenantUpdate
from callhook.errors import NotFound
from callhook.store import TenantValues

router = APIRouter(tags=["tenants"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]


def new_ingest_token() -> str:
    """A fresh ingest token: URL-safe, so it can sit in a path or a `token=` pair."""
    return security.new_ingest_token("tk-")


async def _hash(password: str | None) -> str | None:
    # Argon2 takes ~15 ms of CPU: keep it off the event loop.
    return None if password is None else await asyncio.to_thread(security.hash_password, password)


async def _read(request: Request, name: str) -> dict[str, Any]:
    hub = hub_of(request)
    row = await hub.store.directory.get_tenant(name)
    if row is None:
        raise NotFound(f"no tenant {name!r}", code="unknown-tenant")
    return row


@router.get("/tenants", summary="List tenants (admin)", response_model=TenantPage)
async def list_tenants(
    request: Request,
    who: Who,
    cursor: Cursor = None,
    limit: Limit = 100,
    search: Annotated[str | None, Query(max_length=64, description="name contains")] = None,
) -> dict[str, Any]:
    require_admin(who)
    hub = hub_of(request)
    found = await hub.store.directory.list_tenants(after=cursor or "", limit=limit, search=search)
    return {"tenants": found, "next_cursor": next_cursor(found, "name", limit)}


@router.post("/tenants", summary="Create a tenant (admin)", status_code=201, response_model=Tenant)
async def create_tenant(request: Request, who: Who, body: TenantCreate) -> dict[str, Any]:
    require_admin(who)
    hub = hub_of(request)
    values = TenantValues(
        domain=body.domain,
        password_hash=await _hash(body.password),
        ingest_token=body.ingest_token or new_ingest_token(),
        open_ingest_networks=body.open_ingest_networks,
        extended_prefix=body.extended_prefix,
    )
    outcome = await hub.store.directory.create_tenant(body.name, values)
    check_outcome(outcome, f"tenant {body.name!r}", field="name")
    await hub.reload_directory()
    return await _read(request, body.name)


@router.get("/tenants/{tenant}", summary="A tenant", response_model=Tenant)
async def get_tenant(request: Request, tenant: str, who: Who) -> dict[str, Any]:
    require_tenant(hub_of(request), who, tenant)
    return await _read(request, tenant)


@router.patch("/tenants/{tenant}", summary="Change a tenant (admin)", response_model=Tenant)
async def update_tenant(
    request: Request, tenant: str, who: Who, body: TenantUpdate
) -> dict[str, Any]:
    require_admin(who)
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    values = TenantValues(
        domain=body.domain,
        password_hash=await _hash(body.password),
        open_ingest_networks=body.open_ingest_networks,
        extended_prefix=body.extended_prefix,
    )
    outcome = await hub.store.directory.update_tenant(tenant, values)
    check_outcome(outcome, f"tenant {tenant!r}")
    await hub.reload_directory()
    return await _read(request, tenant)


@router.delete(
    "/tenants/{tenant}",
    summary="Delete a tenant and, in the background, its events and CDRs (admin)",
    status_code=204,
    response_class=Response,
)
async def delete_tenant(request: Request, tenant: str, who: Who) -> Response:
    require_admin(who)
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    if not await hub.store.directory.delete_tenant(tenant):
        raise NotFound(f"no tenant {tenant!r}", code="unknown-tenant")
    hub.forget_api_keys()
    await hub.reload_directory()
    hub.retention.purge_tenant(tenant)
    return Response(status_code=204)


@router.post(
    "/tenants/{tenant}/ingest-token/rotate",
    summary="Replace the tenant's ingest token (phones need the new URLs)",
    response_model=IngestToken,
)
async def rotate_ingest_token(request: Request, tenant: str, who: Who) -> dict[str, str]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    token = new_ingest_token()
    values = TenantValues(ingest_token=token)
    outcome = await hub.store.directory.update_tenant(tenant, values)
    check_outcome(outcome, f"tenant {tenant!r}")
    await hub.reload_directory()
    return {"ingest_token": token}
