"""The dashboard in a real browser against a real `callhook serve`: login, a call from ring
to hang-up, presence, today's counts, the event stream, phone setup, tenant keys, resume."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from callhook.phone_urls import phone_url
from tests.support.browser import chromium, login, new_page, screenshot, shared_hub
from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Phone

TOKEN = "gs-7f3a9c"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


@pytest.fixture(scope="session")
def dash_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from shared_hub(tmp_path_factory)


def phones(hub: Hub, a: str = "101", b: str = "102") -> tuple[Phone, Phone]:
    """Two registered Grandstream phones."""
    out = []
    for number, model in ((a, "GXP2170"), (b, "GRP2614")):
        phone = Phone(hub.port, TOKEN, number, mac=f"000B82000{number}")
        r = phone.send("Registration", phone_ip=f"192.0.2.{number[-2:]}", product=model)
        assert r.status == 200, r.body
        out.append(phone)
    return out[0], out[1]


def stat(page: Page, name: str) -> int:
    return int(page.locator(f"[data-stat={name}]").inner_text())


def test_login_keeps_the_key_in_session_storage_only(dash_hub: Hub, page: Page) -> None:
    page.goto(dash_hub.base + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Unknown or revoked key.")
    login(page, dash_hub)
    assert page.evaluate("sessionStorage.getItem('callhook.key')") == ADMIN_KEY
    assert page.evaluate("localStorage.length") == 0
    assert page.evaluate("document.cookie") == ""
    # A reload keeps the session (same tab); logging out forgets the key.
    page.reload()
    page.locator("#conn[data-state=live]").wait_for()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('callhook.key')") is None


def test_a_call_rings_is_answered_and_ends(dash_hub: Hub, page: Page) -> None:
    alice, bob = phones(dash_hub, "101", "102")
    login(page, dash_hub)
    calls_before = stat(page, "calls")
    answered_before = stat(page, "answered")
    presence = page.locator("#presence")
    expect(presence.locator("[data-ext='101'] .badge")).to_have_text("Available")

    alice.send("Outgoing Call", remote="102", call_id="c-101")
    bob.send("Incoming Call", remote="101", display_remote="Alice", call_id="c-102")
    row = page.locator("#calls tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator(".badge")).to_have_text("Ringing")
    expect(row.locator("td").nth(0)).to_contain_text("101")
    expect(row.locator("td").nth(1)).to_contain_text("102")
    expect(presence.locator("[data-ext='102'] .badge")).to_have_text("Ringing")
    expect(presence.locator("[data-ext='102'] .call")).to_have_text("ringing from 101")
    screenshot(page, "dashboard-ringing")

    bob.send("Establish Call", remote="101", call_id="c-102")
    alice.send("Establish Call", remote="102", call_id="c-101")
    expect(row.locator(".badge")).to_have_text("Talking")
    expect(presence.locator("[data-ext='101'] .badge")).to_have_text("On a call")
    expect(presence.locator("[data-ext='102'] .call")).to_have_text("with 101")
    duration = row.locator("td.duration")
    first = duration.inner_text()
    expect(duration).not_to_have_text(first, timeout=3000)  # ticking
    screenshot(page, "dashboard-live")

    alice.send("Terminate Call", remote="102", call_id="c-101", duration="2")
    bob.send("Terminate Call", remote="101", call_id="c-102", duration="2")
    expect(row).to_have_count(0)
    expect(page.locator("#calls [data-role=empty]")).to_be_visible()
    expect(presence.locator("[data-ext='101'] .badge")).to_have_text("Available")
    expect(page.locator("[data-stat=calls]")).to_have_text(str(calls_before + 1))
    expect(page.locator("[data-stat=answered]")).to_have_text(str(answered_before + 1))
    expect(page.locator("[data-stat=talk]")).not_to_have_text("\u2013")  # the "none yet" dash
    bar = page.locator(".chart g.hour").nth(time.localtime().tm_hour)
    expect(bar.locator("rect.answered")).to_have_count(1)

    # An unanswered call: missed, counted as such.
    missed_before = stat(page, "missed")
    bob.send("Incoming Call", remote="0711222333", call_id="c-miss")
    expect(row.locator(".badge")).to_have_text("Ringing")
    bob.send("Missed Call", remote="0711222333", call_id="c-miss")
    expect(row).to_have_count(0)
    expect(page.locator("[data-stat=missed]")).to_have_text(str(missed_before + 1))
    expect(page.locator("[data-stat=calls]")).to_have_text(str(calls_before + 2))


def test_presence_shows_dnd_forwarding_and_device(dash_hub: Hub, page: Page) -> None:
    carol, _ = phones(dash_hub, "103", "104")
    login(page, dash_hub)
    row = page.locator("#presence [data-ext='103']")
    expect(row.locator(".device")).to_contain_text("GXP2170")
    carol.send("DND On")
    carol.send("Call Forwarding On")
    expect(row.locator(".badge")).to_have_text("Do not disturb")
    expect(row.locator(".flag").first).to_have_text("DND")
    expect(row.locator(".flag").nth(1)).to_have_text("Forwarding")
    # The filters: only extensions in DND, then a search by name.
    visible = page.locator("#presence [role=row][data-ext]:visible")
    page.get_by_label("Show", exact=True).select_option("dnd")
    expect(visible.filter(has_text="Carol")).to_have_count(1)
    expect(visible.filter(has_text="User 104")).to_have_count(0)
    page.get_by_label("Show", exact=True).select_option("")
    page.get_by_label("Search", exact=True).fill("carol")
    expect(visible).to_have_count(1)
    expect(visible.locator("[role=rowheader]")).to_have_text("103")


def test_event_stream_filters_pauses_and_expands(dash_hub: Hub, page: Page) -> None:
    one, two = phones(dash_hub, "105", "106")
    login(page, dash_hub)
    page.get_by_role("link", name="Events", exact=True).click()
    stream = page.locator("#view-events ol.events")
    expect(stream).to_have_attribute("aria-live", "polite")
    extension = page.get_by_label("Extension", exact=True)
    extension.fill("105")
    expect(stream.locator("li")).to_have_count(1)  # its registration, from the snapshot

    one.send("DND On")
    two.send("DND On")
    expect(stream.locator("li")).to_have_count(2)
    expect(stream.locator("li").first).to_have_attribute("data-key", "dnd_on")
    page.get_by_label("Topic", exact=True).select_option("extension_events")
    page.get_by_label("Key", exact=True).select_option("dnd_on")
    expect(stream.locator("li")).to_have_count(1)
    screenshot(page, "dashboard-events-filtered")
    extension.fill("")
    dnd = stream.locator("li[data-key=dnd_on] .what")
    expect(dnd.filter(has_text="106")).to_have_count(1)
    expect(dnd.filter(has_text="105")).to_have_count(1)
    expect(stream.locator("li[data-key=extension_register]")).to_have_count(0)
    page.get_by_label("Key", exact=True).select_option("")
    page.get_by_label("Topic", exact=True).select_option("")

    # Each event expands to its JSON.
    newest = stream.locator("li").first
    seq = newest.get_attribute("data-seq")
    newest.locator("summary").click()
    expect(newest.locator("pre")).to_contain_text('"event_type": "dnd_on"')
    expect(newest.locator("pre")).to_contain_text(f'"seq": {seq}')
    expect(newest.locator("pre")).to_contain_text('"extension": "sip:106@acme.example.com"')

    # Paused: new events are counted, not shown; resumed: shown.
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("button", name="Resume")).to_have_attribute("aria-pressed", "true")
    expect(stream).to_have_attribute("aria-live", "off")
    one.send("DND Off")
    expect(page.locator("#view-events [data-role=status]")).to_contain_text("paused, 1 new")
    expect(stream.locator("li").first).to_have_attribute("data-seq", seq)
    page.get_by_role("button", name="Resume").click()
    expect(stream.locator("li").first).to_have_attribute("data-key", "dnd_off")
    screenshot(page, "dashboard-events")


def test_phone_setup_shows_each_vendors_urls(dash_hub: Hub, page: Page) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    login(page, dash_hub)
    page.get_by_role("link", name="Phone setup", exact=True).click()
    urls = page.locator("#view-phones ul.urls li")
    incoming = page.locator("#view-phones li[data-event=incoming_call] .url-text")
    here = f"127.0.0.1:{dash_hub.port}"
    expect(incoming).to_have_text(phone_url("grandstream", "incoming_call", here, TOKEN).url)
    assert f"/token={TOKEN}&event=Incoming%20Call&" in incoming.inner_text()
    assert urls.count() == 20
    page.get_by_label("Vendor").select_option("yealink")
    expect(incoming).to_have_text(phone_url("yealink", "incoming_call", here, TOKEN).url)
    page.get_by_label("Hub address as phones reach it").fill("pbx.example.com:8080")
    other = phone_url("yealink", "incoming_call", "pbx.example.com:8080", TOKEN).url
    assert other.startswith(f"http://pbx.example.com:8080/ingest/{TOKEN}/")
    expect(incoming).to_have_text(other)
    copy = page.locator("#view-phones li[data-event=incoming_call] button")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == other
    expect(page.get_by_label("Model", exact=True)).to_be_hidden()  # Yealink: one spelling
    page.get_by_label("Vendor").select_option("grandstream")
    page.get_by_label("Hub address as phones reach it").fill("")
    expect(incoming).to_have_text(phone_url("grandstream", "incoming_call", here, TOKEN).url)
    # The GXV3240's guide spells the call id `$call-id`: its URLs ask for that name.
    page.get_by_label("Model", exact=True).select_option("GXV3240")
    gxv3240 = phone_url("grandstream", "incoming_call", here, TOKEN, "GXV3240").url
    assert "call_id=$call-id&" in gxv3240
    expect(incoming).to_have_text(gxv3240)
    page.get_by_label("Model", exact=True).select_option("")
    expect(incoming).to_have_text(phone_url("grandstream", "incoming_call", here, TOKEN).url)
    screenshot(page, "dashboard-phones")


def test_a_tenant_key_sees_only_its_tenant(dash_hub: Hub, page: Page) -> None:
    status, created = dash_hub.api("POST", "/api/v1/tenants/globex/api-keys", {"name": "board"})
    assert status == 201, created
    login(page, dash_hub, key=created["key"], tenant="globex")
    select = page.get_by_label("Tenant", exact=True)
    expect(select).to_be_disabled()
    expect(select.locator("option")).to_have_count(1)
    expect(page.locator("#presence [role=rowheader]")).to_have_text(["201"])
    # The admin picks among every tenant.
    page.get_by_role("button", name="Log out").click()
    login(page, dash_hub)
    expect(select.locator("option")).to_have_count(3)
    expect(page.locator("#presence [role=rowheader]").first).to_have_text("101")
    select.select_option("globex")
    expect(page.locator("#presence [role=rowheader]")).to_have_text(["201"])
    page.locator("#conn[data-state=live]").wait_for()
    select.select_option("acme")
    expect(page.locator("#presence [role=rowheader]").first).to_have_text("101")


def test_keyboard_and_labels(dash_hub: Hub, page: Page) -> None:
    login(page, dash_hub)
    page.reload()  # the session survives a reload; keyboard navigation starts afresh
    page.locator("#conn[data-state=live]").wait_for()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    nav = page.get_by_role("navigation", name="Views")
    for name in ("Live", "Events", "Phone setup"):
        expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(nav.get_by_role("link", name="Live")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()
    nav.get_by_role("link", name="Events").focus()
    page.keyboard.press("Enter")
    expect(nav.get_by_role("link", name="Events")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("log")).to_be_visible()
    # Every form control has a label.
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input, select')].filter(el =>
            !el.labels?.length && !el.getAttribute('aria-label')).map(el => el.outerHTML)"""
    )
    assert unlabeled == []


def test_the_polling_channel_resumes_from_the_last_seq_after_an_outage(
    dash_hub: Hub, page: Page
) -> None:
    # The page polls the events API when no WSI server takes its ticket; force that mode
    # (the WSI mode's resume is test_dashboard_api's dropped-socket test).
    page.route(
        "**/dashboard-ticket",
        lambda route: route.fulfill(
            status=201,
            content_type="application/json",
            body='{"ticket": "dt_unused", "ws_path": null, "expires_in": 30}',
        ),
    )
    alice, bob = phones(dash_hub, "107", "108")
    login(page, dash_hub)
    conn = page.locator("#conn")
    last = int(conn.get_attribute("data-last-seq") or 0)
    assert last > 0
    # The hub becomes unreachable for the page (as in a restart or a network cut) ...
    page.route("**/api/v1/**", lambda route: route.abort("connectionrefused"))
    expect(conn).to_have_attribute("data-state", "offline")
    alice.send("DND On")  # ... while events go on
    bob.send("DND On")
    page.unroute("**/api/v1/**")
    expect(conn).to_have_attribute("data-state", "live", timeout=15_000)
    alice.send("DND Off")
    expect(conn).to_have_attribute("data-last-seq", str(last + 3))
    stream = page.locator("#view-events ol.events li")
    seqs = [int(s) for s in stream.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs[:4] == [last + 3, last + 2, last + 1, last], seqs  # none lost, none twice
    assert len(seqs) == len(set(seqs))


def test_a_stuck_call_is_ended_from_the_dashboard(dash_hub: Hub, page: Page) -> None:
    """A call whose phone never reports its end (rebooted mid-call) would stay on the board
    for hours: the End button ends it on the hub, with the events that produces."""
    phone = Phone(dash_hub.port, TOKEN, "109", mac="000B82000109")
    login(page, dash_hub)
    call = {"remote": "0711999000", "call_id": "c-stuck"}
    assert phone.send("Incoming Call", **call).status == 200
    assert phone.send("Establish Call", **call).status == 200
    row = page.locator("#calls tbody tr", has_text="0711999000")
    expect(row.locator(".badge")).to_have_text("Talking")

    end = row.get_by_role("button", name="End this call")
    end.click()  # the first click only asks for confirmation
    confirm = row.get_by_role("button", name="Confirm: end this call now")
    expect(confirm).to_have_text("Confirm end")
    calls = dash_hub.api("GET", "/api/v1/tenants/acme/calls")[1]["calls"]
    assert [c for c in calls if c["call_id"] == "c-stuck"]  # not ended yet
    confirm.click()
    expect(row).to_have_count(0)
    expect(page.locator("#announcer")).to_have_text("Call ended")
    expect(page.locator("#presence [data-ext='109'] .badge")).to_have_text("Available")

    keys = [e["event_type"] for e in dash_hub.all_events() if e.get("call_id") == "c-stuck"]
    assert keys[-2:] == ["call_ended", "call_cdr"], keys
    [cdr] = [e for e in dash_hub.all_events() if e.get("call_id") == "c-stuck" and "cdr_id" in e
             and e["event_type"] == "call_cdr"]  # fmt: skip
    assert cdr["end_reason"] == "ended_by_api" and cdr["status"] == "answered"
    # The phone's own Terminate Call, late, is a report of a call that ended: no second CDR.
    assert phone.send("Terminate Call", duration="30", **call).status == 200
    keys = [e["event_type"] for e in dash_hub.all_events() if e.get("call_id") == "c-stuck"]
    assert keys.count("call_cdr") == 1
