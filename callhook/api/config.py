"""POST /api/v1/config/reload: read the config file again and apply its tenants (admin)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from callhook.api.auth import Principal, hub_of, principal, require_admin
from callhook.api.common import ERRORS
from callhook.config import ConfigError
from callhook.errors import Unprocessable

router = APIRouter(tags=["ops"], responses=ERRORS)

Who = Annotated[Principal, Depends(principal)]


class ConfigReloaded(BaseModel):
    added: list[str] = Field(description="what the file declares that was not there")
    changed: list[str]
    removed: list[str] = Field(description="extensions, queues ... no longer declared")
    detached: list[str] = Field(description="tenants no longer declared (data kept)")
    restart_needed: list[str] = Field(
        description="sections other than [[tenant]] that changed: applied at the next restart"
    )


@router.post(
    "/config/reload",
    summary="Apply the config file's tenants now (as SIGHUP); every node sees them",
    response_model=ConfigReloaded,
    responses={422: {"description": "the file is unreadable, invalid or clashes: nothing changed"}},
)
async def reload_config(request: Request, who: Who) -> dict[str, Any]:
    require_admin(who)
    try:
        done = await hub_of(request).reload_config()
    except ConfigError as exc:
        msg = f"config not reloaded, nothing changed: {exc}"
        raise Unprocessable(msg, code="invalid-config") from None
    return asdict(done)
