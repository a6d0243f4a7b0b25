"""Webhook delivery health in the dashboard: a failing endpoint turns red, a redelivery to
the repaired endpoint turns it green again; an endpoint answering 410 is shown disabled."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import chromium, login, new_page, screenshot, shared_hub
from tests.support.hub import Hub
from tests.support.phone import Phone


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


class Sink:
    """A local HTTP receiver answering `status` on /hook and 410 on /gone; counts requests."""

    def __init__(self) -> None:
        self.status = 500
        self.received: list[str] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                sink.received.append(self.path)
                code = 410 if self.path.startswith("/gone") else sink.status
                body = b"upstream exploded" if code >= 500 else b"ok"
                self.send_response(code)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="session")
def dash_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from shared_hub(tmp_path_factory)


def test_a_failing_endpoint_turns_red_and_a_redelivery_heals_it(
    dash_hub: Hub, sink: Sink, page: Page
) -> None:
    fast = [0.2, 0.2, 0.2, 0.2, 600]  # three quick failures make it "failing"; then wait
    status, hook = dash_hub.api(
        "POST",
        "/api/v1/tenants/acme/webhooks",
        {"url": sink.url("/hook"), "topics": ["extension_events"], "schedule": fast},
    )
    assert status == 201, hook
    status, gone = dash_hub.api(
        "POST",
        "/api/v1/tenants/acme/webhooks",
        {"url": sink.url("/gone"), "topics": ["extension_events"], "schedule": fast},
    )
    assert status == 201, gone
    login(page, dash_hub)
    page.get_by_role("navigation", name="Views").get_by_role("link", name="Webhooks").click()
    row = page.locator(f"table.webhooks tr[data-endpoint='{hook['id']}']")
    expect(row.locator(".badge")).to_have_text("Healthy")

    Phone(dash_hub.port, "gs-7f3a9c", "109").send("DND On")
    expect(row.locator(".badge")).to_have_text("Failing", timeout=15_000)
    expect(row).to_have_class("bad")
    expect(row.locator("td.last-error")).to_contain_text("HTTP 500")
    expect(row.locator("td").nth(2)).to_have_text("0%")
    gone_row = page.locator(f"table.webhooks tr[data-endpoint='{gone['id']}']")
    expect(gone_row.locator(".badge")).to_have_text("Disabled")
    expect(gone_row.get_by_role("button", name="Enable")).to_be_visible()
    row.get_by_role("button", name="Deliveries").click()
    deliveries = page.locator("table.deliveries tbody tr")
    expect(deliveries).to_have_count(1)
    expect(deliveries.locator(".badge")).to_have_text("pending")
    screenshot(page, "dashboard-webhooks")

    # The receiver is repaired; a redelivery succeeds and the endpoint recovers.
    sink.status = 200
    row.get_by_role("button", name="Redeliver").click()
    expect(row.locator(".badge")).to_have_text("Healthy", timeout=15_000)
    expect(row).not_to_have_class("bad")
    expect(deliveries.locator(".badge")).to_have_text("succeeded")
    assert sink.received.count("/hook") >= 4
