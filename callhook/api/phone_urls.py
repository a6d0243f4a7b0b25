"""GET /api/v1/tenants/{tenant}/phone-urls: the URL to paste on a phone, for every event."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from callhook import phone_urls
from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.common import ERRORS
from callhook.api.models import PhoneUrls
from callhook.errors import Unprocessable
from callhook.fields import PhoneUrlVendor

router = APIRouter(tags=["phone urls"], responses=ERRORS)

Vendor = PhoneUrlVendor


def default_host(public_url: str, request_host: str) -> str:
    """`server.public_url` when set, else the Host the caller reached us by."""
    return public_url or request_host or "127.0.0.1:8080"


@router.get(
    "/tenants/{tenant}/phone-urls",
    summary="The Action URL to paste for each event of a vendor's phones",
    response_model=PhoneUrls,
)
async def get_phone_urls(
    request: Request,
    tenant: str,
    who: Annotated[Principal, Depends(principal)],
    vendor: Annotated[Vendor, Query(description="phone vendor")] = "grandstream",
    host: Annotated[
        str | None,
        Query(max_length=255, description="how phones reach the hub: HOST[:PORT] or a URL"),
    ] = None,
    model: Annotated[
        str | None,
        Query(
            max_length=32,
            description="phone model whose guide names variables its own way (GXV3240: $call-id)",
        ),
    ] = None,
) -> dict[str, Any]:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    t = hub.tenants[tenant]
    if not t.ingest_token:
        raise Unprocessable(f"tenant {tenant!r} has no ingest_token", field="tenant")
    where = host or default_host(hub.settings.server.public_url, request.headers.get("host", ""))
    try:
        urls = phone_urls.phone_urls(vendor, where, t.ingest_token, model or "")
    except phone_urls.PhoneUrlError as exc:
        field = "model" if str(exc).startswith("model") else "host" if host else "server.public_url"
        raise Unprocessable(str(exc), field=field) from None
    return {
        "tenant": tenant,
        "vendor": vendor,
        "model": model or "",
        "host": where,
        "urls": [
            {
                "event": u.event,
                "vendor_event": u.vendor_event,
                "setting": u.setting,
                "url": u.url,
                "too_long": u.too_long,
            }
            for u in urls
        ],
    }
