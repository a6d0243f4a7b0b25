"""/api/v1/tenants/{tenant}/extensions, groups, queues and trunks: the numbering plan.

A tenant key manages its own tenant's plan; the admin key any tenant's. Each change is
written to the database, then the hub reloads its directory, so WSI permissions, the
correlator and ingest see it at once. A config-declared entry may be changed here, but the
config file wins again at the next start (docs/api.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from callhook import security
from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import (
    ERRORS,
    NAME_PATTERN,
    Cursor,
    Limit,
    check_outcome,
    next_cursor,
)
from callhook.api.models import (
    Extension,
    ExtensionCreate,
    ExtensionPage,
    ExtensionUpdate,
    Group,
    GroupList,
    GroupMembers,
    Queue,
    QueueCreate,
    QueuePage,
    QueueUpdate,
    Trunk,
    TrunkCreate,
    TrunkPage,
)
from callhook.errors import NotFound, Unprocessable
from callhook.store import numbering as plan

router = APIRouter(tags=["directory"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]
GroupName = Annotated[str, Path(pattern=NAME_PATTERN)]
T = TypeVar("T")


async def _write(request: Request, fn: Callable[[Any], T]) -> T:
    """Run a numbering-plan write, then reload the hub's directory."""
    hub = hub_of(request)
    result = await hub.store.write(lambda c, _s: fn(c))
    await hub.reload_directory()
    return result


async def _found(
    request: Request, fn: Callable[[Any], dict[str, Any] | None], what: str
) -> dict[str, Any]:
    row = await hub_of(request).store.read(fn)
    if row is None:
        raise NotFound(f"no {what}", code="not-found")
    return row


def _scope(request: Request, who: Principal, tenant: str) -> None:
    require_tenant(hub_of(request), who, tenant)


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
    _scope(request, who, tenant)
    found = await hub_of(request).store.read(
        lambda c: plan.list_extensions(
            c, tenant, after=cursor or "", limit=limit, group=group, search=search
        )
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
    _scope(request, who, tenant)
    pw = await asyncio.to_thread(security.hash_password, body.password or "")
    outcome = await _write(
        request,
        lambda c: plan.create_extension(c, tenant, body.number, body.display_name, pw, body.groups),
    )
    check_outcome(outcome, f"extension {body.number!r}", field="number")
    return await _found(request, lambda c: plan.get_extension(c, tenant, body.number), "extension")


@router.get(
    "/tenants/{tenant}/extensions/{number}", summary="An extension", response_model=Extension
)
async def get_extension(request: Request, tenant: str, number: str, who: Who) -> dict[str, Any]:
    _scope(request, who, tenant)
    return await _found(
        request, lambda c: plan.get_extension(c, tenant, number), f"extension {number!r}"
    )


@router.patch(
    "/tenants/{tenant}/extensions/{number}",
    summary="Change an extension (name, WSI password, groups)",
    response_model=Extension,
)
async def update_extension(
    request: Request, tenant: str, number: str, who: Who, body: ExtensionUpdate
) -> dict[str, Any]:
    _scope(request, who, tenant)
    pw = None
    if body.password is not None:
        pw = await asyncio.to_thread(security.hash_password, body.password)
    outcome = await _write(
        request,
        lambda c: plan.update_extension(
            c, tenant, number, display_name=body.display_name, password_hash=pw, groups=body.groups
        ),
    )
    check_outcome(outcome, f"extension {number!r}")
    return await _found(request, lambda c: plan.get_extension(c, tenant, number), "extension")


@router.delete(
    "/tenants/{tenant}/extensions/{number}",
    summary="Delete an extension",
    status_code=204,
    response_class=Response,
)
async def delete_extension(request: Request, tenant: str, number: str, who: Who) -> Response:
    _scope(request, who, tenant)
    if not await _write(request, lambda c: plan.delete_extension(c, tenant, number)):
        raise NotFound(f"no extension {number!r}", code="not-found")
    return Response(status_code=204)


# groups --------------------------------------------------------------------------------
@router.get(
    "/tenants/{tenant}/groups",
    summary="Groups and their members (from the extensions' groups)",
    response_model=GroupList,
)
async def list_groups(request: Request, tenant: str, who: Who) -> dict[str, Any]:
    _scope(request, who, tenant)
    found = await hub_of(request).store.read(lambda c: plan.groups(c, tenant))
    return {"groups": [{"name": g, "members": m} for g, m in found.items()]}


@router.get("/tenants/{tenant}/groups/{group}", summary="A group", response_model=Group)
async def get_group(request: Request, tenant: str, group: GroupName, who: Who) -> dict[str, Any]:
    _scope(request, who, tenant)
    found = await hub_of(request).store.read(lambda c: plan.groups(c, tenant))
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
    _scope(request, who, tenant)
    unknown = await _write(request, lambda c: plan.set_group(c, tenant, group, body.members))
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
    _scope(request, who, tenant)
    found = await hub_of(request).store.read(lambda c: plan.groups(c, tenant))
    if group not in found:
        raise NotFound(f"no group {group!r}", code="not-found")
    await _write(request, lambda c: plan.set_group(c, tenant, group, []))
    return Response(status_code=204)


# queues --------------------------------------------------------------------------------
@router.get("/tenants/{tenant}/queues", summary="List queues", response_model=QueuePage)
async def list_queues(
    request: Request,
    tenant: str,
    who: Who,
    cursor: Cursor = None,
    limit: Limit = 100,
    member: Annotated[str | None, Query(max_length=32, description="member or manager")] = None,
) -> dict[str, Any]:
    _scope(request, who, tenant)
    found = await hub_of(request).store.read(
        lambda c: plan.list_queues(c, tenant, after=cursor or "", limit=limit, member=member)
    )
    return {"queues": found, "next_cursor": next_cursor(found, "number", limit)}


@router.post(
    "/tenants/{tenant}/queues", summary="Create a queue", status_code=201, response_model=Queue
)
async def create_queue(request: Request, tenant: str, who: Who, body: QueueCreate) -> Any:
    _scope(request, who, tenant)
    outcome = await _write(
        request,
        lambda c: plan.save_queue(c, tenant, body.number, body.members, body.managers, create=True),
    )
    check_outcome(outcome, f"queue {body.number!r}", field="number")
    return await _found(request, lambda c: plan.get_queue(c, tenant, body.number), "queue")


@router.get("/tenants/{tenant}/queues/{number}", summary="A queue", response_model=Queue)
async def get_queue(request: Request, tenant: str, number: str, who: Who) -> Any:
    _scope(request, who, tenant)
    return await _found(request, lambda c: plan.get_queue(c, tenant, number), f"queue {number!r}")


@router.patch(
    "/tenants/{tenant}/queues/{number}",
    summary="Change a queue's members or managers",
    response_model=Queue,
)
async def update_queue(
    request: Request, tenant: str, number: str, who: Who, body: QueueUpdate
) -> Any:
    _scope(request, who, tenant)
    outcome = await _write(
        request,
        lambda c: plan.save_queue(c, tenant, number, body.members, body.managers, create=False),
    )
    check_outcome(outcome, f"queue {number!r}")
    return await _found(request, lambda c: plan.get_queue(c, tenant, number), "queue")


@router.delete(
    "/tenants/{tenant}/queues/{number}",
    summary="Delete a queue",
    status_code=204,
    response_class=Response,
)
async def delete_queue(request: Request, tenant: str, number: str, who: Who) -> Response:
    _scope(request, who, tenant)
    if not await _write(request, lambda c: plan.delete_queue(c, tenant, number)):
        raise NotFound(f"no queue {number!r}", code="not-found")
    return Response(status_code=204)


# trunks --------------------------------------------------------------------------------
@router.get("/tenants/{tenant}/trunks", summary="List trunks", response_model=TrunkPage)
async def list_trunks(
    request: Request, tenant: str, who: Who, cursor: Cursor = None, limit: Limit = 100
) -> dict[str, Any]:
    _scope(request, who, tenant)
    found = await hub_of(request).store.read(
        lambda c: plan.list_trunks(c, tenant, after=cursor or "", limit=limit)
    )
    return {"trunks": found, "next_cursor": next_cursor(found, "name", limit)}


@router.post(
    "/tenants/{tenant}/trunks", summary="Create a trunk", status_code=201, response_model=Trunk
)
async def create_trunk(request: Request, tenant: str, who: Who, body: TrunkCreate) -> Any:
    _scope(request, who, tenant)
    outcome = await _write(request, lambda c: plan.create_trunk(c, tenant, body.name))
    check_outcome(outcome, f"trunk {body.name!r}", field="name")
    return {"name": body.name, "source": "api"}


@router.get("/tenants/{tenant}/trunks/{name}", summary="A trunk", response_model=Trunk)
async def get_trunk(request: Request, tenant: str, name: str, who: Who) -> Any:
    _scope(request, who, tenant)
    return await _found(request, lambda c: plan.get_trunk(c, tenant, name), f"trunk {name!r}")


@router.delete(
    "/tenants/{tenant}/trunks/{name}",
    summary="Delete a trunk",
    status_code=204,
    response_class=Response,
)
async def delete_trunk(request: Request, tenant: str, name: str, who: Who) -> Response:
    _scope(request, who, tenant)
    if not await _write(request, lambda c: plan.delete_trunk(c, tenant, name)):
        raise NotFound(f"no trunk {name!r}", code="not-found")
    return Response(status_code=204)
