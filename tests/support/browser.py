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


# The dashboard tests' hub: the test config plus extensions 104-109 for acme (so that each
# test has phones of its own), a tenant "big" with 1,000 extensions (no passwords: nothing
# to hash), webhooks to loopback allowed, and no minimum ring time (a quick unanswered call
# counts as missed).
BIG_TOKEN = "big-token"
BIG_EXTENSIONS = range(2000, 3000)
_ACME_EXTRA = "".join(
    f'\n[[tenant.extension]]\nnumber = "{n}"\ndisplay_name = "User {n}"\n' for n in range(104, 110)
)
_BIG = (
    f'\n[[tenant]]\nname = "big"\ndomain = "big.example.com"\ningest_token = "{BIG_TOKEN}"\n'
    + "".join(
        f'\n[[tenant.extension]]\nnumber = "{n}"\ndisplay_name = "Agent {n}"\n'
        for n in BIG_EXTENSIONS
    )
)
_shared: Hub | None = None
_users = 0


def dashboard_hub(workdir: Path) -> Hub:
    """The dashboard tests' hub (not started), in `workdir`."""
    hub = Hub(
        workdir,
        server_config="allow_private_targets = true",
        acme_config=_ACME_EXTRA,
        extra_config=_BIG,
    )
    text = hub.config_path.read_text()
    hub.config_path.write_text(
        text.replace("tick_interval = 0.2", "tick_interval = 0.2\nmin_ring_seconds = 0")
    )
    return hub


def shared_hub(factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub for every dashboard test module (a hub start costs seconds on a busy
    machine), for session-scoped fixtures: started by the first, stopped after the last."""
    global _shared, _users
    if _shared is None:
        _shared = dashboard_hub(factory.mktemp("dashboard")).start()
    _users += 1
    try:
        yield _shared
    finally:
        _users -= 1
        if _users == 0:
            _shared.stop()
            _shared = None


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
    size = page.viewport_size
    if full_page and size is not None:
        # Rows out of the viewport are not rendered (content-visibility: auto), so make the
        # viewport as tall as the page instead of asking for a "full page" picture.
        height = page.evaluate("document.documentElement.scrollHeight")
        page.set_viewport_size({"width": size["width"], "height": min(int(height), 4000)})
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done(null)))")
    try:
        page.screenshot(path=str(path), animations="disabled")
    finally:
        if size is not None:
            page.set_viewport_size(size)
    return path
