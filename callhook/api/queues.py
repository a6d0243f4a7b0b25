"""/api/v1/tenants/{tenant}/queues and trunks, managed like the rest of the numbering plan.

Same rules as api/directory.py: a tenant key manages its own tenant, the admin key any;
each change is written, then the hub reloads its directory; the config file wins again
at the next start for config-declared entries.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

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
    Queue,
    QueueCreate,
    QueuePage,
    QueueUpdate,
    Trunk,
    TrunkCreate,
    TrunkPage,
)
from callhook.errors import NotFound, Unprocessable

router = APIRouter(tags=["directory"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]


# queues --------------------------------------------------------------------------------
def _known_extensions(request: Request, tenant: str, **lists: list[str] | None) -> None:
    """Members and managers must be extensions of the tenant, as group members must."""
    known = hub_of(request).tenants[tenant].extensions
    for field, numbers in lists.items():
        unknown = sorted(set(numbers or ()) - set(known))
        if unknown:
            raise Unprocessable(f"no such extensions: {', '.join(unknown[:10])}", field=field)


@router.get("/tenants/{tenant}/queues", summary="List queues", response_model=QueuePage)
async def list_queues(
    request: Request,
    tenant: str,
    who: Who,
    cursor: Cursor = None,
    limit: Limit = 100,
    member: Annotated[str | None, Query(max_length=32, description="member or manager")] = None,
) -> dict[str, Any]:
    scope(request, who, tenant)
    found = await hub_of(request).store.directory.list_queues(
        tenant, after=cursor or "", limit=limit, member=member
    )
    return {"queues": found, "next_cursor": next_cursor(found, "number", limit)}


@router.post(
    "/tenants/{tenant}/queues", summary="Create a queue", status_code=201, response_model=Queue
)
async def create_queue(request: Request, tenant: str, who: Who, body: QueueCreate) -> Any:
    scope(request, who, tenant)
    _known_extensions(request, tenant, members=body.members, managers=body.managers)
    outcome = await write_then_reload(
        request,
        directory_of(request).save_queue(
            tenant, body.number, body.members, body.managers, create=True
        ),
    )
    check_outcome(outcome, f"queue {body.number!r}", field="number")
    return await found(request, directory_of(request).get_queue(tenant, body.number), "queue")


@router.get("/tenants/{tenant}/queues/{number}", summary="A queue", response_model=Queue)
async def get_queue(request: Request, tenant: str, number: str, who: Who) -> Any:
    scope(request, who, tenant)
    return await found(
        request, directory_of(request).get_queue(tenant, number), f"queue {number!r}"
    )


@router.patch(
    "/tenants/{tenant}/queues/{number}",
    summary="Change a queue's members or managers",
    response_model=Queue,
)
async def update_queue(
    request: Request, tenant: str, number: str, who: Who, body: QueueUpdate
) -> Any:
    scope(request, who, tenant)
    _known_extensions(request, tenant, members=body.members, managers=body.managers)
    outcome = await write_then_reload(
        request,
        directory_of(request).save_queue(tenant, number, body.members, body.managers, create=False),
    )
    check_outcome(outcome, f"queue {number!r}")
    return await found(request, directory_of(request).get_queue(tenant, number), "queue")


@router.delete(
    "/tenants/{tenant}/queues/{number}",
    summary="Delete a queue",
    status_code=204,
    response_class=Response,
)
async def delete_queue(request: Request, tenant: str, number: str, who: Who) -> Response:
    scope(request, who, tenant)
    if not await write_then_reload(request, directory_of(request).delete_queue(tenant, number)):
        raise NotFound(f"no queue {number!r}", code="not-found")
    return Response(status_code=204)


# trunks --------------------------------------------------------------------------------
@router.get("/tenants/{tenant}/trunks", summary="List trunks", response_model=TrunkPage)
async def list_trunks(
    request: Request, tenant: str, who: Who, cursor: Cursor = None, limit: Limit = 100
) -> dict[str, Any]:
    scope(request, who, tenant)
    found = await hub_of(request).store.directory.list_trunks(
        tenant, after=cursor or "", limit=limit
    )
    return {"trunks": found, "next_cursor": next_cursor(found, "name", limit)}


@router.post(
    "/tenants/{tenant}/trunks", summary="Create a trunk", status_code=201, response_model=Trunk
)
async def create_trunk(request: Request, tenant: str, who: Who, body: TrunkCreate) -> Any:
    scope(request, who, tenant)
    outcome = await write_then_reload(
        request, directory_of(request).create_trunk(tenant, body.name)
    )
    check_outcome(outcome, f"trunk {body.name!r}", field="name")
    return {"name": body.name, "source": "api"}


@router.get("/tenants/{tenant}/trunks/{name}", summary="A trunk", response_model=Trunk)
async def get_trunk(request: Request, tenant: str, name: str, who: Who) -> Any:
    scope(request, who, tenant)
    return await found(request, directory_of(request).get_trunk(tenant, name), f"trunk {name!r}")


@router.delete(
    "/tenants/{tenant}/trunks/{name}",
    summary="Delete a trunk",
    status_code=204,
    response_class=Response,
)
async def delete_trunk(request: Request, tenant: str, name: str, who: Who) -> Response:
    scope(request, who, tenant)
    if not await write_then_reload(request, directory_of(request).delete_trunk(tenant, name)):
        raise NotFound(f"no trunk {name!r}", code="not-found")
    return Response(status_code=204)
