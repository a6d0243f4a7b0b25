"""The dashboard at 1,000 extensions and 100 concurrent calls: everything shown, rows
updated in place (never the whole list rebuilt per event), the event list capped; and the
layout on a phone screen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    BIG_EXTENSIONS,
    BIG_TOKEN,
    LAPTOP,
    PHONE,
    chromium,
    login,
    new_page,
    screenshot,
    shared_hub,
)
from tests.support.hub import Hub
from tests.support.phone import Phone, send_all

CALLS = 100


# Every presence row element is marked, and rows added to or removed from the list are
# counted: an event must update the rows of the extensions it touches in place, never
# rebuild the 1,000-row list (how long the page then stays busy is bench/dashboard.py's).
WATCH = """() => {
  const body = document.querySelector("#presence [data-role=rows]");
  for (const row of body.children) row.__kept = true;
  window.__rowsMoved = 0;
  new MutationObserver((records) => {
    for (const r of records) window.__rowsMoved += r.addedNodes.length + r.removedNodes.length;
  }).observe(body, { childList: true });
}"""
KEPT = """(selector) => [...document.querySelectorAll(selector)].filter((e) => !e.__kept).length"""
MARK = """(selector) => { for (const e of document.querySelectorAll(selector)) e.__kept = true; }"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


@pytest.fixture(scope="session")
def dash_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from shared_hub(tmp_path_factory)


def test_1000_extensions_and_100_concurrent_calls(dash_hub: Hub, page: Page) -> None:
    login(page, dash_hub, tenant="big")
    presence = page.locator("#presence [role=row][data-ext]")
    expect(presence).to_have_count(len(BIG_EXTENSIONS))
    expect(presence.first.locator("[role=rowheader]")).to_have_text(str(BIG_EXTENSIONS[0]))
    expect(presence.last.locator("[role=rowheader]")).to_have_text(str(BIG_EXTENSIONS[-1]))
    page.evaluate(WATCH)

    agents = [
        Phone(dash_hub.port, BIG_TOKEN, str(n), mac=f"0004F2{n:06d}")
        for n in range(2000, 2000 + CALLS * 10, 10)
    ]
    caller = {a.number: f"07112{a.number}" for a in agents}
    send_all([(a, "Incoming Call", {"remote": caller[a.number]}) for a in agents])
    calls = page.locator("#calls tbody tr")
    expect(calls).to_have_count(CALLS, timeout=20_000)
    expect(page.locator("#calls tr[data-state=ringing]")).to_have_count(CALLS)
    page.evaluate(MARK, "#calls tbody tr")
    send_all([(a, "Establish Call", {"remote": caller[a.number]}) for a in agents])
    expect(page.locator("#calls tr[data-state=established]")).to_have_count(CALLS, timeout=20_000)
    assert page.evaluate(KEPT, "#calls tbody tr") == 0, "call rows rebuilt when answered"
    summary = page.locator("#presence [data-role=summary]")
    expect(summary).to_contain_text(f"{len(BIG_EXTENSIONS)} extensions")
    expect(summary).to_contain_text(f"{CALLS} on a call")
    expect(page.locator("#presence [data-ext='2010'] .badge")).to_have_text("On a call")
    screenshot(page, "dashboard-scale", full_page=False)

    # The same page on a phone: no sideways scrolling, the calls still readable.
    page.set_viewport_size(PHONE)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page is {overflow}px wider than a phone screen"
    first = calls.first
    expect(first.locator(".duration.inline")).to_be_visible()
    box = first.locator(".duration.inline").bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"], box
    screenshot(page, "dashboard-phone", full_page=False)
    page.set_viewport_size(LAPTOP)

    send_all([(a, "Terminate Call", {"remote": caller[a.number], "duration": "5"}) for a in agents])
    expect(calls).to_have_count(0, timeout=20_000)
    expect(page.locator("[data-stat=calls]")).to_have_text(str(CALLS))
    expect(page.locator("[data-stat=answered]")).to_have_text(str(CALLS))
    expect(summary).to_contain_text("0 on a call")

    # 300 calls' events went by: the same 1,000 row elements, none added or removed.
    assert page.evaluate(KEPT, "#presence [data-role=rows] > *") == 0, "presence rows rebuilt"
    assert page.evaluate("window.__rowsMoved") == 0, "presence rows added or removed"

    # Over 700 events went by; the stream keeps the newest 500 rows.
    page.get_by_role("navigation", name="Views").get_by_role("link", name="Events").click()
    expect(page.locator("#view-events ol.events li")).to_have_count(500)
    expect(page.locator("#view-events [data-role=status]")).to_contain_text("at most 500")
