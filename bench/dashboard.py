"""Dashboard benchmark: the page's work per event while 100 calls come and go among 1,000
extensions, against the work of building its 1,000-row extension list once.

    python bench/dashboard.py        # about 10 s; needs Debian's chromium (make chromium)

One hub (the dashboard tests' config: a tenant "big" with 1,000 extensions) and Debian's
headless Chromium, driven by Playwright, on this machine.

The page's work is Chromium's own account of its renderer main thread: the `TaskDuration`
of the DevTools protocol's `Performance.getMetrics` (every task: script, style, layout,
paint), read before and after.

1. Baseline, in the same page: the dashboard's own extension view (`PresenceView`, from
   /static/presence.js) builds the 1,000 rows of the tenant's presence (fetched
   beforehand) into a copy of the panel, laid out and painted; ROUNDS times, the median
   counts. That is what re-rendering the whole list would cost the page per event.
2. The storm: 100 phones each ring (`Incoming Call`), are answered (`Establish Call`) and
   hang up (`Terminate Call`), eight requests in flight at a time, while the page follows
   live (calls table, presence, event stream); each phase waits until the page shows all
   100 calls in the new state. The page's work over the storm is divided by the events
   the hub emitted meanwhile (its event log's `seq`). Printed for scale: the longest
   time between two frames (the page busy, or starved of CPU by the hub and the phones on
   this shared machine), the longest task over 50 ms, and the idle page's longest frame
   gap.

`RATIO dashboard = one full build of the list ÷ the page's work per event`: how many
events the page follows for the price of one rebuild of the list.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import CDPSession, Page, sync_playwright

from bench.common import table
from tests.support.browser import (
    ARGS,
    BIG_EXTENSIONS,
    BIG_TOKEN,
    CHROMIUM,
    LAPTOP,
    dashboard_hub,
    login,
)
from tests.support.hub import ADMIN_KEY, Hub
from tests.support.phone import Phone, send_all

CALLS = 100
ROUNDS = 5
IDLE_SECONDS = 2

FETCH = """async (key) => {
  const headers = { Authorization: `Bearer ${key}` };
  const r = await fetch("/api/v1/tenants/big/presence", { headers });
  window.__presence = await r.json();
  await import("/static/presence.js");
}"""
# Build the list with the dashboard's own code into a copy of the panel, up to the frame
# that shows it.
FULL_BUILD = """async () => {
  const { PresenceView } = await import("/static/presence.js");
  const data = window.__presence;
  const panel = document.querySelector("#presence");
  const copy = panel.cloneNode(true);
  copy.removeAttribute("id");
  copy.querySelector("[data-role=rows]").replaceChildren();
  panel.after(copy);
  const directory = new Map();
  for (const st of data.extensions) directory.set(String(st.extension), `Agent ${st.extension}`);
  const api = { get: async () => data };
  const calls = { calls: new Map() };
  const view = new PresenceView(copy, api, "big", directory, calls, () => Date.now() / 1000);
  await view.load();
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  copy.remove();
  return copy.querySelectorAll("[data-role=rows] > *").length;
}"""

WATCH = """() => {
  window.__longest = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longest = Math.max(window.__longest, e.duration);
  }).observe({ type: "longtask", buffered: false });
  window.__gap = 0;
  let last = performance.now();
  const frame = (t) => {
    window.__gap = Math.max(window.__gap, t - last);
    last = t;
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
}"""
RESET = "() => { window.__gap = 0; window.__longest = 0; }"
READ = "() => [window.__gap, window.__longest]"


def wait_count(page: Page, selector: str, count: int) -> None:
    page.wait_for_function(
        "([s, n]) => document.querySelectorAll(s).length === n", arg=[selector, count],
        timeout=30_000,
    )  # fmt: skip


def busy(cdp: CDPSession) -> float:
    """Seconds the page's renderer main thread has worked so far."""
    metrics = cdp.send("Performance.getMetrics")["metrics"]
    return next(m["value"] for m in metrics if m["name"] == "TaskDuration")


def last_seq(hub: Hub) -> int:
    """The newest seq of the tenant's event log."""
    seq = 0
    while True:
        status, body = hub.api("GET", f"/api/v1/tenants/big/events?since_seq={seq}&limit=1000")
        assert status == 200, body
        if not body:
            return seq
        seq = body[-1]["seq"]


def storm(page: Page, cdp: CDPSession, hub: Hub) -> dict[str, float]:
    """Seconds of each phase until shown; the page's work (s), the events emitted, the
    longest frame gap and task (ms)."""
    port = hub.port
    agents = [
        Phone(port, BIG_TOKEN, str(n), mac=f"0004F2{n:06d}")
        for n in range(2000, 2000 + CALLS * 10, 10)
    ]
    caller = {a.number: f"07112{a.number}" for a in agents}
    phases = [
        ("Incoming Call", {}, "#calls tr[data-state=ringing]", CALLS),
        ("Establish Call", {}, "#calls tr[data-state=established]", CALLS),
        ("Terminate Call", {"duration": "5"}, "#calls tbody tr", 0),
    ]
    page.evaluate(RESET)
    out: dict[str, float] = {}
    seq, work = last_seq(hub), busy(cdp)
    for event, extra, selector, count in phases:
        start = time.perf_counter()
        send_all([(a, event, {"remote": caller[a.number], **extra}) for a in agents])
        wait_count(page, selector, count)
        out[event] = time.perf_counter() - start
    time.sleep(0.5)  # what the last events set off (coalesced re-reads)
    out["work"], out["events"] = busy(cdp) - work, last_seq(hub) - seq
    out["gap"], out["longest"] = page.evaluate(READ)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        hub = dashboard_hub(Path(tmp)).start()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport=LAPTOP, reduced_motion="reduce")
            page = context.new_page()
            cdp = context.new_cdp_session(page)
            cdp.send("Performance.enable")
            login(page, hub, tenant="big")
            wait_count(page, "#presence [role=row][data-ext]", len(BIG_EXTENSIONS))
            page.evaluate(FETCH, ADMIN_KEY)
            builds = []
            for _ in range(ROUNDS):
                before = busy(cdp)
                assert page.evaluate(FULL_BUILD) == len(BIG_EXTENSIONS)
                builds.append((busy(cdp) - before) * 1000)
            page.evaluate(WATCH)
            time.sleep(IDLE_SECONDS)
            idle_gap = page.evaluate(READ)[0]
            result = storm(page, cdp, hub)
        finally:
            browser.close()
            hub.stop()
    build = statistics.median(builds)
    per_event = result["work"] * 1000 / result["events"]
    rows = [
        [f"page work: full build of the 1,000-row list (median of {ROUNDS})", f"{build:.1f} ms",
         " ".join(f"{b:.1f}" for b in builds)],
        ["page work: storm, per event", f"{per_event:.2f} ms",
         f"{result['work'] * 1000:.0f} ms for {result['events']:.0f} events"],
        ["idle page: longest frame gap", f"{idle_gap:.0f} ms", f"over {IDLE_SECONDS} s"],
        ["storm: longest frame gap", f"{result['gap']:.0f} ms", "300 events' requests"],
        ["storm: longest task", f"{result['longest']:.0f} ms", "0: none over 50 ms"],
        *([f"storm: {CALLS} x {event} shown after", f"{result[event]:.2f} s", ""]
          for event in ("Incoming Call", "Establish Call", "Terminate Call")),
    ]  # fmt: skip
    title = f"Dashboard, {len(BIG_EXTENSIONS)} extensions, {CALLS} calls ringing, answered, ended"
    print(table(title, ["measure", "value", "detail"], rows))
    print(f"RATIO dashboard {build / per_event:.2f}")


if __name__ == "__main__":
    main()
