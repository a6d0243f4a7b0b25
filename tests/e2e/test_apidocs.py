"""`/docs` in a real browser with nothing but the hub reachable: Swagger UI from the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.support.browser import chromium, new_page, shared_hub
from tests.support.hub import Hub


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


@pytest.fixture(scope="session")
def dash_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from shared_hub(tmp_path_factory)


def test_docs_page_works_offline(dash_hub: Hub, page: Page) -> None:
    elsewhere: list[str] = []

    def only_the_hub(route: Route) -> None:
        if route.request.url.startswith(dash_hub.base + "/"):
            route.continue_()
        else:  # a CDN, a font, anything: the page must not need it
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_hub)
    page.goto(dash_hub.base + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("callhook")
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/tenants/{tenant}/cdrs"))
    assert page.locator(".opblock").count() > 30
    assert elsewhere == []


def test_docs_page_and_assets_are_served_with_their_headers(dash_hub: Hub) -> None:
    import urllib.request

    with urllib.request.urlopen(dash_hub.base + "/docs", timeout=10) as r:
        page = r.read().decode()
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "<script>" not in page  # no inline script
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"):
        with urllib.request.urlopen(f"{dash_hub.base}/static/vendor/swagger-ui/{asset}") as r:
            assert r.status == 200 and len(r.read()) > 1000
