"""The REST API's FastAPI application: its routers, error shapes and ops endpoints.

Built once per hub by `callhook.app.Hub` (the composition root); the main listener sends
it every request that is not a phone's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Mount

from callhook import __version__
from callhook.api import call_events as call_events_api
from callhook.api import cdrs as cdrs_api
from callhook.api import cluster as cluster_api
from callhook.api import config as config_api
from callhook.api import deliveries as deliveries_api
from callhook.api import directory as directory_api
from callhook.api import events as events_api
from callhook.api import keys as keys_api
from callhook.api import phone_urls as phone_urls_api
from callhook.api import presence as presence_api
from callhook.api import queues as queues_api
from callhook.api import tenants as tenants_api
from callhook.api import webhooks as webhooks_api
from callhook.api.common import ERRORS, allowed_methods
from callhook.api.middleware import BodyLimit, RequestMetrics
from callhook.dashboard import apidocs
from callhook.dashboard import routes as dashboard
from callhook.errors import HubError, error_json
from callhook.ingest.routes import PhoneTargets
from callhook.kamailio import routes as kamailio_api
from callhook.ops import ReadinessProbe
from callhook.store import StoreError

if TYPE_CHECKING:
    from callhook.app import Hub


def build_api(hub: Hub) -> FastAPI:
    """The hub's REST API, dashboard and docs, with every error in one JSON shape."""
    api = FastAPI(
        title="callhook",
        version=__version__,
        description="Call event hub: REST API. Authenticate with `Authorization: Bearer`.",
        docs_url=None,  # served from the package below, not from a CDN
        redoc_url=None,
    )
    api.state.hub = hub
    probe = ReadinessProbe(lambda: hub.store.ping())
    for router in (events_api.router, cdrs_api.router, presence_api.router):
        api.include_router(router, prefix="/api/v1", responses=ERRORS)
    for router in (
        tenants_api.router,
        directory_api.router,
        queues_api.router,
        keys_api.router,
        phone_urls_api.router,
        webhooks_api.router,
        call_events_api.router,
        deliveries_api.router,
        kamailio_api.router,
        cluster_api.router,
        config_api.router,
    ):
        api.include_router(router, prefix="/api/v1")
    dashboard.install(api)  # the page at /, its assets at /static/, its endpoints
    apidocs.install(api)  # /docs, with Swagger UI from /static/vendor/
    # Outermost last: metrics see every answer, 413s included. No CORS: off by default.
    api.add_middleware(BodyLimit, limit=hub.settings.server.max_body_bytes)
    api.add_middleware(
        RequestMetrics, metrics=hub.api_metrics, paths=lambda: list(api.openapi()["paths"])
    )

    @api.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> Response:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @api.exception_handler(StoreError)
    async def _store_error(request: Request, exc: StoreError) -> Response:
        # The database refused the write (disk full, I/O error ...): nothing was stored.
        return Response(
            error_json("storage-unavailable", "the database refused the write; try again"),
            status_code=503,
            media_type="application/json",
        )

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # The framework's own errors (unknown path, wrong method, unreadable body) in the
        # same `{"error": ...}` shape as ours.
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "bad-request")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # the route that matched knows only its own method
            headers["Allow"] = allowed_methods(api, request.scope)
        return Response(
            error_json(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=headers,
            media_type="application/json",
        )

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":  # not JSON at all: unreadable, not invalid
            return Response(
                error_json("bad-request", "the body is not valid JSON"),
                status_code=400,
                media_type="application/json",
            )
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        msg = str(first.get("msg", "invalid request"))
        return Response(
            error_json("invalid", msg, field), status_code=422, media_type="application/json"
        )

    @api.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @api.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: database and workers",
        responses={503: {"description": 'not ready: `{"status": "not-ready"}`'}},
    )
    async def readyz() -> Response:
        ok = hub.ready and await probe.ok()
        body = {"status": "ready" if ok else "not-ready"}
        return JSONResponse(body, status_code=200 if ok else 503)

    @api.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(hub.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return api


def phone_targets(api: FastAPI) -> PhoneTargets:
    """The hub's own paths, from what is registered: every route of the OpenAPI
    document, the app's top-level routes and mounts, and `/ws` (served by the HTTP
    protocol, callhook/http_protocol.py)."""
    routes = [*api.openapi()["paths"], "/ws"]
    mounts = []
    for route in api.routes:
        path = getattr(route, "path", None)
        if isinstance(route, Mount) and path:
            mounts.append(path)
        elif path:
            routes.append(path)
    return PhoneTargets.from_paths(routes, mounts)
