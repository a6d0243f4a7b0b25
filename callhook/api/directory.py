"""/api/v1/tenants/{tenant}/extensions and groups (queues and trunks: api/queues.py).

A tenant key manages its own tenant's plan; the admin key any tenant's. Each change is
written to the database, then the hub reloads its directory, so WSI permissions, the
correlator and ingest see it at once. A config-declared entry may be changed here, but the
config file wins again at the next start (docs/api.md).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from callhook import security
from callhook.api.auth import Principal, hub_of, principal
from callhook.api.common import (
    ERRORS,
    Cursor,
    Limit,
    check_outcome,
    directory_of,
    found,
    next_cursor,
    scope,
    write_then_reload,
)
from callhook.api.models import (
    Extension,
    ExtensionCreate,
    ExtensionPage,
    ExtensionUpdate,
    Group,
    GroupList,
    GroupMembers,
)
from callhook.errors import NotFound, Unprocessable
from callhook.fields import NAME_PATTERN

router = APIRouter(tags=["directory"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]
GroupName = Annotated[str, Path(pattern=NAME_PATTERN)]


# extensions ----------------------------------------------------------------------------
@router.get("/tenants/{tenant}/extensions", summary="List extensions", response_model=ExtensionPage)
async def list_extensions(
    request: Request,
    tenant: str,
    who: Who,
    cursor: Cursor = None,
    limit: Limit = 100,
    group: Annotated[str | None, Query(max_length=64, description="member of group")] = None,
    search: Annotated[str | None, Query(max_length=64, description="in number or name")] = None,
) -> dict[str, Any]:
    scope(request, who, tenant)
    found = await directory_of(request).list_extensions(
        tenant, after=cursor or "", limit=limit, group=group, search=search
    )
    return {"extensions": found, "next_cursor": next_cursor(found, "number", limit)}


@router.post(
    "/tenants/{tenant}/extensions",
    summary="Create an extension",
    status_code=201,
    response_model=Extension,
)
async def create_extension(
    request: Request, tenant: str, who: Who, body: ExtensionCreate
) -> dict[str, Any]:
    scope(request, who, tenant)
    pw = await asyncio.to_thread(security.hash_password, body.password or "")
    outcome = await write_then_reload(
        request,
        directory_of(request).create_extension(
            tenant, body.number, body.display_name, pw, body.groups
        ),
    )
    check_outcome(outcome, f"extension {body.number!r}", field="number")
    return await found(
        request, directory_of(request).get_extension(tenant, body.number), "extension"
    )


@router.get(
    "/tenants/{tenant}/extensions/{number}", summary="An extension", response_model=Extension
)
async def get_extension(request: Request, tenant: str, number: str, who: Who) -> dict[str, Any]:
    scope(request, who, tenant)
    return await found(
        request, directory_of(request).get_extension(tenant, number), f"extension {number!r}"
    )


@router.patch(
    "/tenants/{tenant}/extensions/{number}",
    summary="Change an extension (name, WSI password, groups)",
    response_model=Extension,
)
async def update_extension(
    request: Request, tenant: str, number: str, who: Who, body: ExtensionUpdate
) -> dict[str, Any]:
    scope(request, who, tenant)
    pw = None
    if body.password is not None:
        pw = await asyncio.to_thread(security.hash_password, body.password)
    outcome = await write_then_reload(
        request,
        directory_of(request).update_extension(
            tenant, number, display_name=body.display_name, password_hash=pw, groups=body.groups
        ),
    )
    check_outcome(outcome, f"extension {number!r}")
    return await found(request, directory_of(request).get_extension(tenant, number), "extension")


@router.delete(
    "/tenants/{tenant}/extensions/{number}",
    summary="Delete an extension",
    status_code=204,
    response_class=Response,
)
async def delete_extension(request: Request, tenant: str, number: str, who: Who) -> Response:
    scope(request, who, tenant)
    if not await write_then_reload(request, directory_of(request).delete_extension(tenant, number)):
        raise NotFound(f"no extension {number!r}", code="not-found")
    return Response(status_code=204)


# groups --------------------------------------------------------------------------------
@router.get(
    "/tenants/{tenant}/groups",
    summary="Groups and their members (from the extensions' groups)",
    response_model=GroupList,
)
async def list_groups(request: Request, tenant: str, who: Who) -> dict[str, Any]:
    scope(request, who, tenant)
    found = await hub_of(request).store.directory.groups(tenant)
    return {"groups": [{"name": g, "members": m} for g, m in found.items()]}


@router.get("/tenants/{tenant}/groups/{group}", summary="A group", response_model=Group)
async def get_group(request: Request, tenant: str, group: GroupName, who: Who) -> dict[str, Any]:
    scope(request, who, tenant)
    found = await hub_of(request).store.directory.groups(tenant)
    if group not in found:
        raise NotFound(f"no group {group!r} (no extension names it)", code="not-found")
    return {"name": group, "members": found[group]}


@router.put(
    "/tenants/{tenant}/groups/{group}",
    summary="Set a group's members (others leave it; no members removes it)",
    response_model=Group,
)
async def set_group(
    request: Request, tenant: str, group: GroupName, who: Who, body: GroupMembers
) -> dict[str, Any]:
    scope(request, who, tenant)
    unknown = await write_then_reload(
        request, directory_of(request).set_group(tenant, group, body.members)
    )
    if unknown:
        raise Unprocessable(f"no such extensions: {', '.join(unknown[:10])}", field="members")
    return {"name": group, "members": sorted(set(body.members))}


@router.delete(
    "/tenants/{tenant}/groups/{group}",
    summary="Remove a group from every extension",
    status_code=204,
    response_class=Response,
)
async def delete_group(request: Request, tenant: str, group: GroupName, who: Who) -> Response:
    scope(request, who, tenant)
    found = await hub_of(request).store.directory.groups(tenant)
    if group not in found:
        raise NotFound(f"no group {group!r}", code="not-found")
    await write_then_reload(request, directory_of(request).set_group(tenant, group, []))
    return Response(status_code=204)
