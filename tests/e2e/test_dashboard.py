"""The dashboard in a real browser against a real `callhook serve`: login, a call from ring
to hang-up, presence, today's counts, the event stream, phone setup, tenant keys, resume."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from callhook.phone_urls import phone_url
from tests.support.browser import browser, login, page, screenshot  # noqa: F401
from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    """The test config, with no minimum ring time (a quick unanswered call is "missed")."""
    h = Hub(tmp_path)
    text = h.config_path.read_text()
    h.config_path.write_text(
        text.replace("tick_interval = 0.2", "tick_interval = 0.2\nmin_ring_seconds = 0")
    )
    h.start()
    try:
        yield h
    finally:
        h.stop()


def phones(hub: Hub) -> tuple[Phone, Phone]:
    alice = Phone(hub.port, TOKEN, "101", mac="000B82000101")
    bob = Phone(hub.port, TOKEN, "102", mac="000B82000102")
    for phone, model in ((alice, "GXP2170"), (bob, "GRP2614")):
        r = phone.send("Registration", phone_ip=f"192.0.2.{phone.number[-2:]}", product=model)
        assert r.status == 200, r.body
    return alice, bob


def stat(page: Page, name: str) -> int:
    return int(page.locator(f"[data-stat={name}]").inner_text())


def test_login_keeps_the_key_in_session_storage_only(hub: Hub, page: Page) -> None:
    page.goto(hub.base + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Unknown or revoked key.")
    login(page, hub)
    assert page.evaluate("sessionStorage.getItem('callhook.key')") == ADMIN_KEY
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    # A reload keeps the session (same tab); logging out forgets the key.
    page.reload()
    page.locator("#conn[data-state=live]").wait_for()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('callhook.key')") is None


def test_a_call_rings_is_answered_and_ends(hub: Hub, page: Page) -> None:
    alice, bob = phones(hub)
    login(page, hub)
    calls_before = stat(page, "calls")
    answered_before = stat(page, "answered")
    presence = page.locator("#presence")
    expect(presence.locator("tr[data-ext='101'] .badge")).to_have_text("Available")

    alice.send("Outgoing Call", remote="102", call_id="c-101")
    bob.send("Incoming Call", remote="101", display_remote="Alice", call_id="c-102")
    row = page.locator("#calls tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Ringing")
    expect(row.locator("td").nth(0)).to_contain_text("101")
    expect(row.locator("td").nth(1)).to_contain_text("102")
    expect(presence.locator("tr[data-ext='102'] .badge")).to_have_text("Ringing")
    expect(presence.locator("tr[data-ext='102'] td.call")).to_have_text("ringing from 101")
    screenshot(page, "dashboard-ringing")

    bob.send("Establish Call", remote="101", call_id="c-102")
    alice.send("Establish Call", remote="102", call_id="c-101")
    expect(row.locator(".badge")).to_have_text("Talking")
    expect(presence.locator("tr[data-ext='101'] .badge")).to_have_text("On a call")
    expect(presence.locator("tr[data-ext='102'] td.call")).to_have_text("with 101")
    duration = row.locator("td.duration")
    first = duration.inner_text()
    expect(duration).not_to_have_text(first, timeout=3000)  # ticking
    screenshot(page, "dashboard-live")

    alice.send("Terminate Call", remote="102", call_id="c-101", duration="2")
    bob.send("Terminate Call", remote="101", call_id="c-102", duration="2")
    expect(row).to_have_count(0)
    expect(page.locator("#calls [data-role=empty]")).to_be_visible()
    expect(presence.locator("tr[data-ext='101'] .badge")).to_have_text("Available")
    expect(page.locator("[data-stat=calls]")).to_have_text(str(calls_before + 1))
    expect(page.locator("[data-stat=answered]")).to_have_text(str(answered_before + 1))
    expect(page.locator("[data-stat=talk]")).not_to_have_text("–")
    hour = time.localtime().tm_hour
    bar = page.locator(".chart g.hour").nth(hour)
    expect(bar.locator("rect.answered")).to_have_count(1)

    # An unanswered call: missed, counted as such.
    missed_before = stat(page, "missed")
    bob.send("Incoming Call", remote="0711222333", call_id="c-miss")
    expect(row.locator(".badge")).to_have_text("Ringing")
    bob.send("Missed Call", remote="0711222333", call_id="c-miss")
    expect(row).to_have_count(0)
    expect(page.locator("[data-stat=missed]")).to_have_text(str(missed_before + 1))
    expect(page.locator("[data-stat=calls]")).to_have_text(str(calls_before + 2))


def test_presence_shows_dnd_forwarding_and_device(hub: Hub, page: Page) -> None:
    alice, _ = phones(hub)
    login(page, hub)
    row = page.locator("#presence tr[data-ext='101']")
    expect(row.locator("td.device")).to_contain_text("GXP2170")
    alice.send("DND On")
    alice.send("Call Forwarding On")
    expect(row.locator(".badge")).to_have_text("Do not disturb")
    expect(row.locator("td.flag").first).to_have_text("DND")
    expect(row.locator("td.flag").nth(1)).to_have_text("Forwarding")
    # The filters: only DND extensions, then a search by name.
    page.get_by_label("Show", exact=True).select_option("dnd")
    expect(page.locator("#presence tbody tr:visible")).to_have_count(1)
    page.get_by_label("Show", exact=True).select_option("")
    page.get_by_label("Search", exact=True).fill("bob")
    expect(page.locator("#presence tbody tr:visible")).to_have_count(1)
    expect(page.locator("#presence tbody tr:visible th")).to_have_text("102")


def test_event_stream_filters_pauses_and_expands(hub: Hub, page: Page) -> None:
    alice, bob = phones(hub)
    login(page, hub)
    page.get_by_role("link", name="Events", exact=True).click()
    stream = page.locator("#view-events ol.events")
    expect(stream).to_have_attribute("aria-live", "polite")
    expect(stream.locator("li[data-key=extension_register]")).to_have_count(2)

    alice.send("DND On")
    bob.send("DND On")
    expect(stream.locator("li[data-key=dnd_on]")).to_have_count(2)

    page.get_by_label("Extension", exact=True).fill("101")
    expect(stream.locator("li[data-key=dnd_on]")).to_have_count(1)
    expect(stream.locator("li")).to_have_count(2)  # 101's registration and DND
    page.get_by_label("Topic", exact=True).select_option("extension_events")
    page.get_by_label("Key", exact=True).select_option("dnd_on")
    expect(stream.locator("li")).to_have_count(1)
    screenshot(page, "dashboard-events-filtered")
    page.get_by_label("Extension", exact=True).fill("")
    page.get_by_label("Key", exact=True).select_option("")
    page.get_by_label("Topic", exact=True).select_option("")
    expect(stream.locator("li")).to_have_count(4)

    # Each event expands to its JSON.
    first = stream.locator("li").first
    first.locator("summary").click()
    expect(first.locator("pre")).to_contain_text('"event_type": "dnd_on"')
    expect(first.locator("pre")).to_contain_text('"seq": 4')

    # Paused: new events are counted, not shown; resumed: shown.
    pause = page.get_by_role("button", name="Pause")
    pause.click()
    expect(page.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    alice.send("DND Off")
    expect(page.locator("#view-events [data-role=status]")).to_contain_text("paused, 1 new")
    expect(stream.locator("li[data-key=dnd_off]")).to_have_count(0)
    page.get_by_role("button", name="Resume").click()
    expect(stream.locator("li[data-key=dnd_off]")).to_have_count(1)
    expect(stream.locator("li").first).to_have_attribute("data-key", "dnd_off")
    screenshot(page, "dashboard-events")


def test_phone_setup_shows_each_vendors_urls(hub: Hub, page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, hub)
    page.get_by_role("link", name="Phone setup", exact=True).click()
    urls = page.locator("#view-phones ul.urls li")
    expect(urls.first).to_be_visible()
    incoming = page.locator("#view-phones li[data-event=incoming_call] input")
    here = f"127.0.0.1:{hub.port}"
    expect(incoming).to_have_value(phone_url("grandstream", "incoming_call", here, TOKEN).url)
    assert "/token=gs-7f3a9c&event=Incoming%20Call&" in incoming.input_value()
    assert urls.count() >= 20
    page.get_by_label("Vendor").select_option("yealink")
    expect(incoming).to_have_value(phone_url("yealink", "incoming_call", here, TOKEN).url)
    page.get_by_label("Hub address as phones reach it").fill("pbx.example.com:8080")
    other = phone_url("yealink", "incoming_call", "pbx.example.com:8080", TOKEN).url
    assert other.startswith(f"http://pbx.example.com:8080/ingest/{TOKEN}/")
    expect(incoming).to_have_value(other)
    copy = page.locator("#view-phones li[data-event=incoming_call] button")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == incoming.input_value()
    screenshot(page, "dashboard-phones")


def test_a_tenant_key_sees_only_its_tenant(hub: Hub, page: Page) -> None:
    status, created = hub.api("POST", "/api/v1/tenants/globex/api-keys", {"name": "wallboard"})
    assert status == 201, created
    login(page, hub, key=created["key"], tenant="globex")
    select = page.get_by_label("Tenant", exact=True)
    expect(select).to_be_disabled()
    expect(select.locator("option")).to_have_count(1)
    expect(page.locator("#presence tbody tr")).to_have_count(1)
    expect(page.locator("#presence tbody th")).to_have_text("201")
    # The admin picks among every tenant.
    page.get_by_role("button", name="Log out").click()
    login(page, hub)
    expect(page.get_by_label("Tenant", exact=True).locator("option")).to_have_count(2)
    page.get_by_label("Tenant", exact=True).select_option("globex")
    expect(page.locator("#presence tbody th")).to_have_text("201")


def test_the_live_channel_resumes_from_the_last_seq_after_a_restart(hub: Hub, page: Page) -> None:
    alice, bob = phones(hub)
    login(page, hub)
    stream = page.locator("#view-events ol.events li")
    expect(stream).to_have_count(2)
    hub.stop()
    expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    hub.start()
    # Events while the dashboard is still backing off, and after it is back.
    alice.send("DND On")
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=20_000)
    bob.send("DND On")
    alice.send("DND Off")
    expect(stream).to_have_count(5)
    seqs = [int(s) for s in stream.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == [5, 4, 3, 2, 1], seqs  # each event once, in order, none lost
    last = page.locator("#conn").get_attribute("data-last-seq")
    assert last == "5"


def test_keyboard_and_landmarks(hub: Hub, page: Page) -> None:
    login(page, hub)
    page.reload()  # the session survives a reload; keyboard navigation starts afresh
    page.locator("#conn[data-state=live]").wait_for()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    nav = page.get_by_role("navigation", name="Views")
    for name in ("Live", "Events", "Phone setup"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Live")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    # Every form control has a label.
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select')].filter(el =>
            !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.outerHTML)"""
    )
    assert unlabeled == []
