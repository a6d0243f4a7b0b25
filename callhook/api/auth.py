"""Bearer authentication: the admin key sees everything, a tenant key only its tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from callhook import security
from callhook.errors import Forbidden, NotFound, TooManyRequests, Unauthorized

if TYPE_CHECKING:
    from callhook.app import Hub


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin, or a tenant (by API key)."""

    tenant: str | None  # None: admin

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def principal(request: Request) -> Principal:
    """FastAPI dependency: resolve the Bearer key, rate-limiting failures per address."""
    hub = hub_of(request)
    source = request.client.host if request.client else ""
    if hub.auth_limiter.blocked(f"api:{source}"):
        hub.traffic.login_failed("api", source, "rate-limited", path=request.url.path)
        raise TooManyRequests("too many failed authentications; wait a minute")
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        hub.traffic.login_failed("api", source, "no-key", path=request.url.path)
        raise Unauthorized("send 'Authorization: Bearer <admin or tenant API key>'")
    key = key.strip()
    if security.same(key, hub.settings.server.admin_key):
        return Principal(None)
    tenant = await hub.tenant_of_api_key(key)
    if tenant is None:
        hub.auth_limiter.failed(f"api:{source}")
        hub.traffic.login_failed("api", source, "unknown-key", path=request.url.path)
        raise Unauthorized("unknown or revoked API key")
    return Principal(tenant)


def require_tenant(hub: Hub, who: Principal, tenant: str) -> None:
    """404 for a tenant that does not exist; 403 for a key of another tenant."""
    if not who.is_admin and who.tenant != tenant:
        raise Forbidden("this API key belongs to another tenant")
    if tenant not in hub.tenants:
        raise NotFound(f"no tenant {tenant!r}", code="unknown-tenant")


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("this needs the admin key")
