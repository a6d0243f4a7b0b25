"""POST /api/v1/tenants/{tenant}/kamailio: a Kamailio server's reports, in batches.

Authenticated with a tenant API key (the source key: create one per Kamailio, named after
it) or the admin key. The answer comes after the batch's events are in the log, so a
Kamailio that got a 2xx may forget the batch; on any other answer it sends it again.
Events that a Kamailio report caused carry `"source": "kamailio"`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.events import published_event
from callhook.errors import BadRequest
from callhook.events import Event
from callhook.kamailio.reports import MAX_REPORTS, SOURCE, BadReport, translate
from callhook.pipeline import Queued
from callhook.store import StoreError

router = APIRouter(tags=["kamailio"])


@router.post(
    "/tenants/{tenant}/kamailio",
    summary="Reports from a Kamailio server (a JSON array), correlated like phone reports",
    responses={
        200: {"description": "accepted: counts of reports used and skipped, with reasons"},
        400: {"description": "the body is not a JSON array of objects"},
    },
)
async def kamailio_reports(
    request: Request, tenant: str, who: Annotated[Principal, Depends(principal)]
) -> Response:
    hub = hub_of(request)
    require_tenant(hub, who, tenant)
    t = hub.tenants[tenant]
    try:
        reports = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if isinstance(reports, dict):
        reports = [reports]
    if not isinstance(reports, list):
        raise BadRequest("the body is a JSON array of reports")
    if len(reports) > MAX_REPORTS:
        raise BadRequest(f"at most {MAX_REPORTS} reports per request")
    # Kamailio's SIP workers queue reports concurrently: its own clock orders them.
    order = sorted(range(len(reports)), key=lambda i: _when(reports[i]))
    source = request.client.host if request.client else ""
    skipped: list[dict[str, Any]] = []
    published: list[tuple[Event, ...]] = []
    queued: list[Queued] = []
    for i in order:  # skipped reports are named by their place in the request
        try:
            meaning = translate(reports[i], t)
        except BadReport as exc:
            skipped.append({"report": i, "reason": str(exc)})
            continue
        for parsed in meaning.calls:
            events, pending = hub.pipeline.accept(t, parsed, source)
            # Marked now, before the batch is written (at the next loop turn).
            for e in events:
                e.body["source"] = SOURCE
                if e.key == "call_cdr" and meaning.talk_seconds is not None:
                    e.body["talk_seconds"] = meaning.talk_seconds
            queued.append(pending)
        if meaning.register is not None:
            ev = published_event(t, "extension_register", meaning.register)
            ev.body["source"] = SOURCE
            published.append(await hub.pipeline.publish(ev))  # StoreError: a 503
    committed = list(published)
    for pending in queued:
        await asyncio.shield(pending.done)  # StoreError: a 503, and Kamailio sends it again
        stored = pending.committed()
        if stored is None:
            raise StoreError("the database refused these events")
        committed.append(stored)
    body = {
        "accepted": len(reports) - len(skipped),
        "skipped": skipped,
        "events": sum(len(e) for e in committed),
    }
    return Response(orjson.dumps(body), media_type="application/json")


def _when(report: Any) -> float:
    if isinstance(report, dict):
        try:
            return float(report.get("t") or 0)
        except (TypeError, ValueError):
            return 0.0
    return 0.0
