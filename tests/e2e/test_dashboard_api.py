"""The dashboard's server side: a self-contained page, its endpoints, its tickets; and its
live channel's WSI mode driven against the hub's real `/ws`."""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from callhook.dashboard.tickets import PREFIX, TicketBook
from tests.support.browser import chromium, new_page, shared_hub
from tests.support.hub import Hub
from tests.support.phone import Phone

STATIC = Path(__file__).resolve().parents[2] / "callhook" / "dashboard" / "static"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from chromium()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from new_page(browser)


@pytest.fixture(scope="session")
def dash_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    yield from shared_hub(tmp_path_factory)


def fetch(hub: Hub, path: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(hub.base + path, timeout=10) as r:
        return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()


def test_the_page_loads_nothing_from_elsewhere(dash_hub: Hub) -> None:
    status, headers, body = fetch(dash_hub, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    csp = headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    html = body.decode()
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert refs and all(r.startswith(("/static/", "#")) for r in refs), refs
    for ref in refs:
        if ref.startswith("/static/"):
            code, head, _ = fetch(dash_hub, ref)
            assert code == 200 and head["x-content-type-options"] == "nosniff"
    # No CDN, no font service, no fetch elsewhere: only our own relative imports. (The SVG
    # namespace is a name, not an address anyone fetches.)
    # (static/vendor/ holds Swagger UI for /docs, checked offline by test_apidocs.py.)
    for f in STATIC.iterdir():
        if not f.is_file():
            continue
        text = f.read_text()
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, (f.name, urls)
        imports = re.findall(r'from "([^"]+)"', text)
        assert all(i.startswith("./") for i in imports), (f.name, imports)


def test_session_tells_the_keys_role_and_tenants(dash_hub: Hub) -> None:
    status, body = dash_hub.api("GET", "/api/v1/dashboard/session")
    assert status == 200 and body["role"] == "admin"
    assert [t["name"] for t in body["tenants"]] == ["acme", "big", "globex"]
    assert body["tenants"][0]["domain"] == "acme.example.com"
    status, created = dash_hub.api("POST", "/api/v1/tenants/globex/api-keys", {"name": "wall"})
    assert status == 201
    key = created["key"]
    status, body = dash_hub.api("GET", "/api/v1/dashboard/session", key=key)
    assert status == 200 and body == {
        "role": "tenant",
        "tenants": [{"name": "globex", "domain": "globex.example.com", "extensions": 1}],
        "loopback_only": True,  # the test hub listens on 127.0.0.1: Phone setup warns
        "public_url": "",
    }
    status, _ = dash_hub.api("GET", "/api/v1/tenants/acme/dashboard-snapshot", key=key)
    assert status == 403
    status, _ = dash_hub.api("POST", "/api/v1/tenants/acme/dashboard-ticket", key=key)
    assert status == 403
    status, _ = dash_hub.api("GET", "/api/v1/dashboard/session", key="")
    assert status == 401


def test_snapshot_gives_the_resume_point_and_latest_events(dash_hub: Hub) -> None:
    Phone(dash_hub.port, "gs-7f3a9c", "109").send("DND On")
    Phone(dash_hub.port, "gs-7f3a9c", "109").send("DND Off")
    status, snap = dash_hub.api("GET", "/api/v1/tenants/acme/dashboard-snapshot?events=20")
    assert status == 200
    # The hub is shared by the dashboard modules: a call another test left open may time
    # out meanwhile, so look for 109's two events among the latest, in order.
    mine = [e for e in snap["events"] if e.get("extension", "").startswith("sip:109@")]
    assert [e["event_type"] for e in mine][-2:] == ["dnd_on", "dnd_off"]
    seqs = [e["seq"] for e in snap["events"]]
    assert seqs == sorted(seqs) and snap["last_seq"] == seqs[-1]
    status, two = dash_hub.api("GET", "/api/v1/tenants/acme/dashboard-snapshot?events=2")
    assert len(two["events"]) == 2 and two["events"][-1]["seq"] <= two["last_seq"]
    assert {"number": "101", "display_name": "Alice"} in snap["directory"]
    assert abs(snap["server_time"] - time.time()) < 60


def test_ticket_and_webhook_health_endpoints(dash_hub: Hub) -> None:
    status, body = dash_hub.api("POST", "/api/v1/tenants/acme/dashboard-ticket")
    assert status == 201, body
    assert body["ticket"].startswith(PREFIX) and body["expires_in"] == 30
    assert body["ws_path"] == "/ws"  # the WSI server redeems tickets on /ws
    status, body = dash_hub.api("GET", "/api/v1/tenants/globex/dashboard-webhook-health")
    assert status == 200 and body["endpoints"] == {}


def test_tickets_are_one_time_per_tenant_and_short_lived() -> None:
    now = [1000.0]
    book = TicketBook(ttl=30, max_tickets=3, clock=lambda: now[0])
    t = book.issue("acme")
    assert book.redeem("globex", t) is False  # another tenant's: refused, and used up
    assert book.redeem("acme", t) is False
    t = book.issue("acme")
    assert book.redeem("acme", t) is True
    assert book.redeem("acme", t) is False  # once
    late = book.issue("acme")
    now[0] += 31
    assert book.redeem("acme", late) is False  # expired
    assert book.redeem("acme", "tenant-secret") is False  # a password is no ticket
    for _ in range(10):
        book.issue("acme")
    assert len(book) == 3  # bounded
    assert book.ws_path is None
    book.attach("/ws")
    assert book.ws_path == "/ws"


# The dashboard's live channel in WSI mode, against the real /ws. This harness hands LiveFeed
# the tenant's WSI password as its "ticket" (the same auth frame), so that reconnects do not
# need a fresh ticket each; tests/e2e/test_wsi_tickets.py covers real tickets.
LIVE_HARNESS = """async ([lastSeq, password]) => {
  const { LiveFeed } = await import("/static/live.js");
  const api = {
    post: async () => ({ ticket: password, ws_path: "/ws", expires_in: 30 }),
    get: async () => { throw new Error("polling is not expected here"); },
  };
  const meta = JSON.parse(document.getElementById("callhook-meta").textContent);
  const feed = new LiveFeed(api, "acme", lastSeq, meta.topics);
  window.__feed = feed;
  window.__seqs = [];
  window.__states = [];
  feed.addEventListener("events", (e) => window.__seqs.push(...e.detail.map((ev) => ev.seq)));
  feed.addEventListener("status", (e) => {
    window.__states.push(e.detail.state + "/" + e.detail.mode);
  });
  feed.start();
}"""


def wait_js(page: Page, expression: str, timeout: float = 10_000) -> None:
    """Poll a JS expression until truthy (wait_for_function would eval, which CSP forbids)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout} ms: {expression}"
        time.sleep(0.05)


def test_the_wsi_live_channel_resumes_after_a_dropped_socket(dash_hub: Hub, page: Page) -> None:
    phone = Phone(dash_hub.port, "gs-7f3a9c", "109")
    phone.send("DND On")
    status, snap = dash_hub.api("GET", "/api/v1/tenants/acme/dashboard-snapshot?events=0")
    assert status == 200, snap
    start = snap["last_seq"]
    page.goto(dash_hub.base + "/")
    page.evaluate(LIVE_HARNESS, [start - 1, "tenant-secret"])
    wait_js(page, "window.__states.includes('live/wsi')")
    wait_js(page, f"window.__seqs.includes({start})")  # replayed from since_seq
    phone.send("DND Off")
    wait_js(page, f"window.__seqs.includes({start + 1})")  # live
    page.evaluate("window.__feed.drop()")
    wait_js(page, "window.__states.at(-1) === 'offline/wsi'")
    phone.send("DND On")  # while the socket is down
    phone.send("DND Off")
    wait_js(page, f"window.__seqs.includes({start + 3})", timeout=15_000)
    seqs = page.evaluate("window.__seqs")
    assert seqs == [start, start + 1, start + 2, start + 3], seqs
    assert page.evaluate("window.__states.at(-1)") == "live/wsi"
    page.evaluate("window.__feed.stop()")
    expect(page.get_by_label("API key")).to_be_visible()  # the page itself untouched
