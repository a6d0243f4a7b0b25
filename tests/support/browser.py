"""Debian's Chromium driven by Playwright, for the dashboard tests.

No browser is ever downloaded: `make test` installs Debian's `chromium` when it is missing.
Under CI a missing Chromium (or Playwright) fails the tests; elsewhere they are skipped with
the reason.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.hub import ADMIN_KEY, Hub

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"dashboard tests need it under CI: {reason}")
    pytest.skip(reason)


def chromium() -> Iterator[Browser]:
    """Launch Debian's headless Chromium; for a module-scoped `browser` fixture:

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        yield from chromium()
    """
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} not found (make test installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def new_page(browser: Browser) -> Iterator[Page]:
    """A fresh context (own sessionStorage) and page, for a `page` fixture; the test fails
    on any uncaught page error or console error."""
    context = browser.new_context(viewport=LAPTOP, reduced_motion="reduce", locale="en-GB")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    pg.on("console", lambda m: _console(m, errors))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, errors


def _console(message: ConsoleMessage, errors: list[str]) -> None:
    # Failed requests (a 401 on a wrong key, a hub restarting) are logged by the browser
    # too; those are the tests' business. Anything else logged as an error is a bug.
    if message.type == "error" and not message.text.startswith("Failed to load resource"):
        errors.append(f"console: {message.text}")


def login(page: Page, hub: Hub, key: str = ADMIN_KEY, tenant: str = "acme") -> None:
    """Sign in on the dashboard and wait until its live channel is up."""
    page.goto(hub.base + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("#conn[data-state=live]").wait_for()
    if page.locator("#tenant-select").input_value() != tenant:
        page.locator("#tenant-select").select_option(tenant)
        page.locator(f"body[data-tenant={tenant}] #conn[data-state=live]").wait_for()


def screenshot(page: Page, name: str, *, full_page: bool = True) -> Path:
    """Save a PNG under tests/artifacts/ (gitignored) and return its path."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    return path
