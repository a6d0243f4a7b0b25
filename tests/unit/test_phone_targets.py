"""Which requests on the main port are phones': derived from the routes the hub registers."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from callhook.api.app import phone_targets
from callhook.ingest.routes import PhoneTargets


def _targets(app: FastAPI) -> PhoneTargets:
    return phone_targets(app)


def _app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {}

    @app.get("/api/v1/tenants/{tenant}/events")
    def events(tenant: str) -> list[str]:
        return []

    return app


def test_the_hubs_routes_are_its_own_and_pairs_elsewhere_are_a_phones() -> None:
    t = _targets(_app())
    assert not t("GET", "/healthz", b"/healthz", b"probe=1")
    assert not t("GET", "/api/v1/tenants/acme/events", b"/api/v1/tenants/acme/events", b"a=1")
    assert not t("GET", "/api/v2/typo", b"/api/v2/typo", b"a=1")  # under the hub's /api/
    assert not t("GET", "/ws", b"/ws", b"a=1")
    assert t("GET", "/phone", b"/phone", b"token=x&event=y")
    assert t("GET", "/token=x&event=y", b"/token=x&event=y", b"")
    assert t("GET", "/", b"/", b"token=x")
    assert not t("GET", "/", b"/", b"")
    assert t("POST", "/", b"/", b"")  # a form body at the root
    assert t("GET", "/%%%", b"/%%%", b"")  # unreadable: the ingest's 400
    assert not t("GET", "/nothing", b"/nothing", b"")


def test_a_route_added_later_is_not_taken_for_a_phone() -> None:
    app = _app()
    assert _targets(app)("GET", "/status", b"/status", b"verbose=1")

    @app.get("/status")
    def status() -> dict[str, str]:
        return {}

    app.openapi_schema = None  # regenerate, as a new app would
    assert not _targets(app)("GET", "/status", b"/status", b"verbose=1")


def test_mounts_and_unregistered_names() -> None:
    app = _app()
    app.mount("/static", StaticFiles(directory="."), name="static")
    t = _targets(app)
    assert not t("GET", "/static/app.js", b"/static/app.js", b"v=1")
    assert t("GET", "/redoc", b"/redoc", b"a=1")  # nothing is served there: pairs are a phone's
