"""Bearer authentication: the admin key sees everything, a tenant key only its tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request

from callhook import security
from callhook.errors import Forbidden, NotFound, TooManyRequests, Unauthorized, Unavailable
from callhook.limits import Refused

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
    """FastAPI dependency: resolve the Bearer key, limiting failures per client address
    (callhook/limits: only failures count; lookups in flight wait for each other beyond
    the failures still allowed, so parallel guesses cannot overrun the limit)."""
    hub = hub_of(request)
    source = request.client.host if request.client else ""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():  # no guess made: not counted
        hub.traffic.login_failed("api", source, "no-key", path=request.url.path)
        raise Unauthorized("send 'Authorization: Bearer <admin or tenant API key>'")
    attempt = await hub.limits.api.begin(source)
    if isinstance(attempt, Refused):
        if attempt.busy:
            raise Unavailable("too many authentications in progress; try again")
        hub.metrics.auth.refused.labels("api", "rate-limited").inc()
        hub.traffic.login_failed("api", source, "rate-limited", path=request.url.path)
        wait = attempt.retry_after
        raise TooManyRequests(
            f"too many failed authentications; retry in {max(1, round(wait))} s", retry_after=wait
        )
    key = key.strip()
    hub.metrics.auth.checks.labels("api").inc()
    try:
        if security.same(key, hub.settings.server.admin_key):
            who: Principal | None = Principal(None)
        else:
            tenant = await hub.tenant_of_api_key(key)
            who = None if tenant is None else Principal(tenant)
    except BaseException:
        await hub.limits.api.finish(attempt, failed=False)  # no answer (database away)
        raise
    await hub.limits.api.finish(attempt, failed=who is None)
    if who is None:
        hub.traffic.login_failed("api", source, "unknown-key", path=request.url.path)
        raise Unauthorized("unknown or revoked API key")
    return who


def require_tenant(hub: Hub, who: Principal, tenant: str) -> None:
    """404 for a tenant that does not exist; 403 for a key of another tenant."""
    if not who.is_admin and who.tenant != tenant:
        raise Forbidden("this API key belongs to another tenant")
    if tenant not in hub.tenants:
        raise NotFound(f"no tenant {tenant!r}", code="unknown-tenant")


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise Forbidden("this needs the admin key")
