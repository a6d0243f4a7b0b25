"""The dashboard: the page at `/`, its assets under `/static/`, and four small endpoints.

- `GET /api/v1/dashboard/session`: who the key is (admin or a tenant) and the tenants it sees.
- `GET /api/v1/tenants/{t}/dashboard-snapshot`: the last seq (the live channel's resume
  point), the latest events, the directory (display names) and the server's clock.
- `POST /api/v1/tenants/{t}/dashboard-ticket`: a one-time ticket to send as the tenant
  `password` of the WSI `auth` command on `/ws` (see tickets.py and docs/dashboard.md).
- `GET /api/v1/tenants/{t}/dashboard-webhook-health`: success rate, latency and last error
  per endpoint (health.py); the endpoints themselves come from the webhook API.

Everything the page loads is in this package: no CDN, no build step.
"""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from starlette.staticfiles import StaticFiles

from callhook import __version__
from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.config import loopback_only
from callhook.dashboard import health
from callhook.dashboard.shared_tickets import SharedTickets
from callhook.dashboard.tickets import TicketBook
from callhook.errors import Unavailable
from callhook.events import TOPICS
from callhook.phone_urls import URL_VENDORS
from callhook.phone_urls import models as phone_models

router = APIRouter(tags=["dashboard"])

_HERE = Path(__file__).resolve().parent

# The page runs only our own code; the live channel is same-origin (`/ws`).
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


@router.get("/dashboard/session", summary="Dashboard: who this key is and which tenants it sees")
async def session(
    request: Request, who: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    hub = hub_of(request)
    names = sorted(hub.tenants) if who.is_admin else [t for t in (who.tenant,) if t in hub.tenants]
    tenants = [
        {
            "name": name,
            "domain": hub.tenants[name].domain,
            "extensions": len(hub.tenants[name].extensions),
        }
        for name in names
    ]
    return {
        "role": "admin" if who.is_admin else "tenant",
        "tenants": tenants,
        # Phone setup warns: real phones cannot reach a hub that listens on loopback only.
        "loopback_only": loopback_only(hub.settings.server.listen),
        "public_url": hub.settings.server.public_url,
    }


@router.get(
    "/tenants/{tenant}/dashboard-snapshot",
    summary="Dashboard: last seq, latest events, directory and server time",
)
async def snapshot(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    events: Annotated[int, Query(ge=0, le=1000, description="how many latest events")] = 200,
) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    last = await hub.log.last_seq(tenant)
    bodies = (
        await hub.log.read(tenant, since_seq=max(0, last - events), limit=events) if events else []
    )
    t = hub.tenants[tenant]
    if bodies:  # events committed since MAX(seq) was read may be in the page
        last = max(last, int(orjson.loads(bodies[-1])["seq"]))
    head = {
        "tenant": t.name,
        "domain": t.domain,
        "last_seq": last,
        "server_time": time.time(),
        "directory": [
            {"number": e.number, "display_name": e.display_name}
            for e in sorted(t.extensions.values(), key=lambda e: e.number)
        ],
    }
    # Stored bodies are the wire JSON already: splice them in instead of re-encoding.
    body = orjson.dumps(head)[:-1] + b',"events":[' + b",".join(bodies) + b"]}"
    return Response(body, media_type="application/json")


@router.post(
    "/tenants/{tenant}/dashboard-ticket",
    status_code=201,
    summary="Dashboard: a one-time ticket for WSI tenant auth on /ws",
)
async def ticket(
    request: Request, tenant: str, who: Annotated[Principal, Depends(principal)]
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    tickets = hub.dashboard_tickets
    # ws_path null: no WSI server takes tickets on this hub; the dashboard polls instead.
    return {
        "ticket": await _grant(tickets, tenant),
        "expires_in": tickets.ttl,
        "ws_path": tickets.ws_path,
    }


async def _grant(tickets: TicketBook | SharedTickets, tenant: str) -> str:
    try:
        return await tickets.grant(tenant)
    except ConnectionError as exc:  # a cluster's tickets are in Redis
        raise Unavailable(f"no ticket now ({exc}); poll the events API meanwhile") from None


@router.get(
    "/tenants/{tenant}/dashboard-webhook-health",
    summary="Dashboard: delivery health per webhook / Call Events endpoint",
)
async def webhook_health(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    hours: Annotated[float, Query(gt=0, le=24 * 14, description="window, in hours")] = 24,
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    since = time.time() - hours * 3600
    found = await health.endpoint_health(hub.store.deliveries, tenant, since)
    return {"since": since, "endpoints": {k: v.public() for k, v in found.items()}}


# The page ---------------------------------------------------------------------------------
@cache
def render_index() -> bytes:
    """The page, with the topic/key table and the version inlined as a JSON data block."""
    meta = {
        "version": __version__,
        "topics": {t: list(keys) for t, keys in TOPICS.items()},
        "vendors": list(URL_VENDORS),
        "models": {v: list(phone_models(v)) for v in URL_VENDORS if phone_models(v)},
    }
    # `<` escaped so that no value can close the <script> element early.
    data = orjson.dumps(meta).decode().replace("<", "\\u003c")
    template = (_HERE / "templates" / "index.html").read_text(encoding="utf-8")
    return template.replace("{{ meta }}", data).replace("{{ version }}", __version__).encode()


async def index(request: Request) -> Response:
    return Response(render_index(), media_type="text/html; charset=utf-8", headers=_PAGE_HEADERS)


class _Assets(StaticFiles):
    """StaticFiles that make browsers revalidate (ETag) so an upgrade is seen at once."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(api: FastAPI) -> None:
    """Add the dashboard to the hub's FastAPI app: endpoints, `/` and `/static/`."""
    api.include_router(router, prefix="/api/v1")
    api.add_api_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    api.mount("/static", _Assets(directory=_HERE / "static"), name="static")
