"""POST /api/v1/tenants/{tenant}/kamailio: a Kamailio server's reports, in batches.

Authenticated with a tenant API key (the source key: create one per Kamailio, named after
it) or the admin key. The answer comes after the batch's events are in the log, so a
Kamailio that got a 2xx may forget the batch; on any other answer it sends it again.
Events that a Kamailio report caused carry `"source": "kamailio"` and the report's id as
`report_id`; a report whose id the hub has seen is not used again (a batch sent again after
a lost answer), see seen.py. On a cluster node the answer comes once the reports are in
the inbox (stored, correlated next by the tenant's owner): its `events` then counts only
the registrations' events, and a report sent again to another node is stored once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from callhook.api.auth import Principal, hub_of, principal, require_tenant
from callhook.api.events import published_event
from callhook.directory import Tenant
from callhook.errors import BadRequest
from callhook.events import Event
from callhook.kamailio.reports import MAX_REPORTS, SOURCE, BadReport, translate
from callhook.kamailio.seen import SeenReports
from callhook.pipeline import Pending
from callhook.store import StoreError

if TYPE_CHECKING:
    from callhook.app import Hub

router = APIRouter(tags=["kamailio"])
MAX_ID_CHARS = 128


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
    seen: SeenReports | None = getattr(request.app.state, "kamailio_seen", None)
    if seen is None:
        seen = request.app.state.kamailio_seen = SeenReports(hub.log)
    async with seen.lock(tenant):  # a batch sent again waits for the first, then is known
        await seen.load(tenant)
        body = await _use(hub, t, reports, seen, request.client.host if request.client else "")
    return Response(orjson.dumps(body), media_type="application/json")


async def _use(
    hub: Hub, t: Tenant, reports: list[Any], seen: SeenReports, source: str
) -> dict[str, Any]:
    # Kamailio's SIP workers queue reports concurrently: its own clock orders them.
    order = sorted(range(len(reports)), key=lambda i: _when(reports[i]))
    skipped: list[dict[str, Any]] = []
    published: list[tuple[Event, ...]] = []
    queued: list[Pending] = []
    used: list[str] = []  # report ids of this batch, remembered once it is committed
    repeated = 0
    for i in order:  # skipped reports are named by their place in the request
        rid = _report_id(reports[i])
        if rid and (rid in used or seen.seen(t.name, rid)):
            repeated += 1  # sent before (its 2xx was lost): its events are in the log
            continue
        try:
            meaning = translate(reports[i], t)
        except BadReport as exc:
            skipped.append({"report": i, "reason": str(exc)})
            continue
        marks: dict[str, Any] = {"source": SOURCE, **({"report_id": rid} if rid else {})}
        if rid:
            used.append(rid)
        for n, parsed in enumerate(meaning.calls):
            # In a cluster the inbox stores each part of a report once, whatever node
            # the batch is sent to again (`dedupe`); one node knows its ids (seen.py).
            _, pending = hub.pipeline.accept(
                t, parsed, source, (marks, meaning.talk_seconds), f"{rid}/{n}" if rid else ""
            )
            queued.append(pending)
        if meaning.register is not None:
            ev = published_event(t, "extension_register", meaning.register)
            ev.body.update(marks)
            # StoreError: a 503
            published.append(await hub.pipeline.publish(ev, f"{rid}/r" if rid else ""))
    committed = list(published)
    for pending in queued:
        await asyncio.shield(pending.done)  # StoreError: a 503, and Kamailio sends it again
        stored = pending.committed()
        if stored is None:
            raise StoreError("the database refused these events")
        committed.append(stored)
    seen.add(t.name, used)
    return {
        "accepted": len(reports) - len(skipped) - repeated,
        "repeated": repeated,
        "skipped": skipped,
        "events": sum(len(e) for e in committed),
    }


def _report_id(report: Any) -> str:
    """The report's `id` (Kamailio gives each one its own), "" when it has none usable."""
    rid = report.get("id") if isinstance(report, dict) else None
    return rid if isinstance(rid, str) and 0 < len(rid) <= MAX_ID_CHARS else ""


def _when(report: Any) -> float:
    if isinstance(report, dict):
        try:
            return float(report.get("t") or 0)
        except (TypeError, ValueError):
            return 0.0
    return 0.0
