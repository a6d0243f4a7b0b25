// Today's counts (calls, answered, missed, average talk time) and calls per hour, from the
// CDRs API at load and from `call_cdr` events afterwards. "Today" is the browser's day.

import { fmtDuration, h, perFrame, setText } from "./dom.js";

const PAGE = 1000;
const MAX_PAGES = 50;

export class StatsView {
  constructor(root, api, tenant) {
    this.root = root;
    this.api = api;
    this.tenant = tenant;
    this.cdrs = new Map(); // cdr_id -> cdr, today's only
    this.day = dayStart(new Date());
    this.chart = root.querySelector("[data-role=chart]");
    this.caption = root.querySelector("[data-role=chart-caption]");
    this.hours = null;
    this.width = 0;
    this.resize = new ResizeObserver(
      perFrame(() => {
        const w = Math.round(this.chart.clientWidth);
        if (this.hours && w && Math.abs(w - this.width) > 4) this.renderChart(this.hours);
      }),
    );
    this.resize.observe(this.chart);
    this.values = {};
    for (const el of root.querySelectorAll("[data-stat]")) this.values[el.dataset.stat] = el;
  }

  dispose() {
    this.resize.disconnect();
  }

  async load() {
    this.day = dayStart(new Date());
    this.cdrs.clear();
    let cursor = 0;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const data = await this.api.get(`/tenants/${encodeURIComponent(this.tenant)}/cdrs`, {
        from: String(Math.floor(this.day / 1000)),
        limit: String(PAGE),
        cursor: String(cursor),
      });
      for (const cdr of data.cdrs || []) this.take(cdr);
      if (data.next_cursor === null || data.next_cursor === undefined) break;
      cursor = data.next_cursor;
    }
    this.render();
  }

  onEvents(events) {
    let changed = false;
    for (const ev of events) if (ev.event_type === "call_cdr") changed = this.take(ev) || changed;
    if (dayStart(new Date()) !== this.day) {
      this.load().catch((err) => console.warn("callhook: CDRs", err));
      return;
    }
    if (changed) this.render();
  }

  take(cdr) {
    const start = Number(cdr.start_time || cdr.end_time || cdr.time) * 1000;
    if (!(start >= this.day)) return false;
    this.cdrs.set(String(cdr.cdr_id || cdr.session_id || cdr.event_id), cdr);
    return true;
  }

  render() {
    let answered = 0;
    let missed = 0;
    let talk = 0;
    const hours = Array.from({ length: 24 }, () => ({ answered: 0, missed: 0, other: 0 }));
    for (const cdr of this.cdrs.values()) {
      const hour = new Date(Number(cdr.start_time || cdr.time) * 1000).getHours();
      const bucket = hours[hour] || hours[0];
      if (cdr.status === "answered") {
        answered += 1;
        talk += Number(cdr.talk_seconds) || 0;
        bucket.answered += 1;
      } else if (cdr.status === "missed") {
        missed += 1;
        bucket.missed += 1;
      } else {
        bucket.other += 1;
      }
    }
    const total = this.cdrs.size;
    setText(this.values.calls, total);
    setText(this.values.answered, answered);
    setText(this.values.missed, missed);
    setText(this.values.talk, answered ? fmtDuration(talk / answered) : "–");
    setText(this.values.other, total - answered - missed);
    this.renderChart(hours);
  }

  renderChart(hours) {
    this.hours = hours;
    // Drawn at the box's own width, so that labels keep their size on a phone.
    const W = Math.max(240, Math.round(this.chart.clientWidth) || 480);
    const H = 160;
    const top = 14;
    const bottom = 22;
    const left = 26;
    const barW = (W - left) / 24;
    const max = Math.max(1, ...hours.map((b) => b.answered + b.missed + b.other));
    const scale = (H - top - bottom) / max;
    const svg = h("svg:svg", {
      viewBox: `0 0 ${W} ${H}`,
      class: "chart",
      role: "img",
      "aria-labelledby": "chart-title chart-desc",
    });
    const now = new Date().getHours();
    svg.append(
      h("svg:title", { id: "chart-title" }, "Calls per hour today"),
      h("svg:desc", { id: "chart-desc" }, chartSummary(hours)),
    );
    // Axis: a baseline, the max value, and hour labels every 3 hours.
    svg.append(
      h("svg:line", { x1: left, x2: W, y1: H - bottom, y2: H - bottom, class: "axis" }),
      h("svg:text", { x: left - 4, y: top + 4, class: "tick", "text-anchor": "end" }, String(max)),
      h("svg:text", { x: left - 4, y: H - bottom, class: "tick", "text-anchor": "end" }, "0"),
    );
    hours.forEach((b, hour) => {
      const x = left + hour * barW + 1.5;
      const w = barW - 3;
      let y = H - bottom;
      const g = h("svg:g", { class: hour === now ? "hour now" : "hour" });
      for (const [kind, n] of [
        ["answered", b.answered],
        ["missed", b.missed],
        ["other", b.other],
      ]) {
        if (!n) continue;
        const height = n * scale;
        y -= height;
        g.append(h("svg:rect", { x, y, width: w, height, class: `bar ${kind}` }));
      }
      const n = b.answered + b.missed + b.other;
      g.append(
        h(
          "svg:title",
          {},
          `${pad(hour)}:00–${pad(hour)}:59: ${n} calls (${b.answered} answered, ${b.missed} missed)`,
        ),
      );
      svg.append(g);
      if (hour % (W < 400 ? 6 : 3) === 0) {
        svg.append(
          h("svg:text", { x: x + w / 2, y: H - 6, class: "tick", "text-anchor": "middle" }, pad(hour)),
        );
      }
    });
    this.width = W;
    this.chart.replaceChildren(svg);
    setText(this.caption, chartSummary(hours));
  }
}

function pad(n) {
  return String(n).padStart(2, "0");
}

function dayStart(d) {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}

function chartSummary(hours) {
  let best = -1;
  let bestN = 0;
  let total = 0;
  hours.forEach((b, i) => {
    const n = b.answered + b.missed + b.other;
    total += n;
    if (n > bestN) {
      bestN = n;
      best = i;
    }
  });
  if (!total) return "No calls yet today.";
  return `${total} calls today; busiest hour ${pad(best)}:00 with ${bestN}.`;
}
