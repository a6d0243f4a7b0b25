"""Dashboard details a new user stumbled on (issue 16), in a real browser against a real hub:
webhook descriptions and failing response bodies, the Webhooks table on a phone, "internal"
calls, "(+1 more call)", room for Forward, an empty tenant's hint, undeclared extensions,
and the Phone setup warning for a hub on loopback only. Screenshots go to docs/screenshots.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import PHONE, chromium, login, new_page, screenshot
from tests.support.hub import Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
EXTRA = "".join(
    f'\n[[tenant.extension]]\nnumber = "{n}"\ndisplay_name = "User {n}"\n' for n in range(104, 107)
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


@pytest.fixture(scope="module")
def fh_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    hub = Hub(
        tmp_path_factory.mktemp("firsthour"),
        server_config="allow_private_targets = true",
        acme_config=EXTRA,
    ).start()
    try:
        yield hub
    finally:
        hub.stop()


def to_docs(path: Path, name: str) -> None:
    """The README and docs show these pictures: `UPDATE_SCREENSHOTS=1` copies the fresh
    ones there (otherwise a test run would rewrite tracked files every time)."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(path, DOCS / name)


class FailingSink:
    """Answers 500 with a body that the dashboard must show."""

    BODY = b'{"error": "crm database is read-only"}'

    def __init__(self) -> None:
        body = self.BODY

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(500)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_description_and_the_failing_response_body(fh_hub: Hub, page: Page) -> None:
    sink = FailingSink()
    try:
        status, hook = fh_hub.api(
            "POST",
            "/api/v1/tenants/acme/webhooks",
            {
                "url": f"http://127.0.0.1:{sink.port}/hook",
                "topics": ["extension_events"],
                "description": "CRM screen pop",
                "schedule": [0.2, 0.2, 0.2, 600],
            },
        )
        assert status == 201, hook
        login(page, fh_hub)
        page.get_by_role("navigation", name="Views").get_by_role("link", name="Webhooks").click()
        row = page.locator(f"table.webhooks tr[data-endpoint='{hook['id']}']")
        expect(row.locator(".description")).to_have_text("CRM screen pop")

        assert Phone(fh_hub.port, TOKEN, "104").send("DND On").status == 200
        expect(row.locator(".badge")).to_have_text("Failing", timeout=15_000)
        row.get_by_role("button", name="Deliveries").click()
        delivery = page.locator("table.deliveries tbody tr").first
        delivery.locator("summary", has_text="Response").click()
        answer = delivery.locator("pre.response")
        expect(answer).to_contain_text("HTTP 500")
        expect(answer).to_contain_text("crm database is read-only")
        to_docs(screenshot(page, "dashboard-webhooks-response"), "webhooks.png")

        # On a phone the table is one block per endpoint: nothing scrolls sideways.
        page.set_viewport_size(PHONE)
        expect(row.locator(".description")).to_be_visible()
        expect(row.get_by_role("button", name="Deliveries")).to_be_in_viewport()
        wide = page.evaluate("document.documentElement.scrollWidth")
        assert wide <= PHONE["width"], wide
        table = page.locator("table.webhooks")
        assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
        screenshot(page, "dashboard-webhooks-phone")
    finally:
        sink.close()


def test_calls_presence_and_phone_setup(fh_hub: Hub, page: Page) -> None:
    login(page, fh_hub)
    # An internal call (104 -> 105) is labelled "internal", not "ext".
    Phone(fh_hub.port, TOKEN, "104", mac="000B82FA0104").send(
        "Outgoing Call", remote="105", call_id="fh-int"
    )
    Phone(fh_hub.port, TOKEN, "105", mac="000B82FA0105").send(
        "Incoming Call", remote="104", call_id="fh-int"
    )
    calls = page.locator("#calls tbody tr")
    expect(calls.filter(has_text="104").locator("td").nth(4)).to_have_text("internal")
    # Two calls ringing 106: the second is spelled out, not "(+1)".
    phone106 = Phone(fh_hub.port, TOKEN, "106", mac="000B82FA0106")
    phone106.send("Incoming Call", remote="0711000001", call_id="fh-a")
    phone106.send("Incoming Call", remote="0711000002", call_id="fh-b")
    row106 = page.locator("#presence [data-ext='106']")
    expect(row106.locator(".call")).to_contain_text("(+1 more call)")
    cell = row106.locator(".call")
    assert cell.evaluate("el => el.scrollWidth <= el.clientWidth")  # shown, not cut off
    # Forwarding fits its column.
    Phone(fh_hub.port, TOKEN, "103", mac="000B82FA0103").send("Call Forwarding On")
    forward = page.locator("#presence [data-ext='103'] [role=cell]").nth(5)
    expect(forward).to_have_text("Forwarding")
    assert forward.evaluate("el => el.scrollWidth <= el.clientWidth")
    # A phone whose extension the configuration does not declare still shows, greyed.
    Phone(fh_hub.port, TOKEN, "177", mac="000B82FA0177").send(
        "Registration", phone_ip="192.0.2.177"
    )
    row177 = page.locator("#presence [data-ext='177']")
    expect(row177).to_have_class("grow unconfigured")
    expect(row177.locator(".name-cell")).to_have_text("not configured")
    to_docs(screenshot(page, "dashboard-firsthour-live"), "live.png")

    # Phone setup says that a hub on loopback only cannot be reached by real phones.
    page.get_by_role("navigation", name="Views").get_by_role("link", name="Phone setup").click()
    warning = page.locator("#view-phones [data-role=loopback]")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text('listen = "0.0.0.0:8080"')
    expect(page.locator("#view-phones .urls li").first).to_be_visible()
    to_docs(screenshot(page, "dashboard-phone-setup"), "phone-setup.png")


def test_an_empty_tenant_says_how_to_add_extensions(fh_hub: Hub, page: Page) -> None:
    assert fh_hub.api("POST", "/api/v1/tenants", {"name": "empty"})[0] == 201
    login(page, fh_hub)
    page.locator("#tenant-select").select_option("empty")
    hint = page.locator("#presence [data-role=no-extensions]")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("[[tenant.extension]]")
    expect(hint).to_contain_text("POST /api/v1/tenants/empty/extensions")
    # A tenant with extensions shows no such hint.
    page.locator("#tenant-select").select_option("acme")
    expect(page.locator("#presence [data-ext='101']")).to_be_attached()
    expect(hint).to_be_hidden()
