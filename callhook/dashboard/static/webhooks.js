// Webhook endpoints (JSON webhooks and Call Events rules) with their delivery health, from
// the webhook API (GET .../webhooks, .../call-events, per-endpoint deliveries, redeliver)
// and GET .../dashboard-webhook-health. Hidden when this hub has no webhook API.

import { isClosed, isMissingRoute } from "./api.js";
import { announce, coalesce, fmtAgo, fmtClock, h, setAttr, setText } from "./dom.js";

const STATUS_LABELS = {
  enabled: "Healthy",
  failing: "Failing",
  disabled: "Disabled",
  off: "Off",
};
const HEALTH_CLASS = { enabled: "healthy", failing: "failing", disabled: "disabled", off: "off" };
const KINDS = [
  { kind: "webhook", path: "webhooks", list: "webhooks", label: "JSON webhook" },
  { kind: "call_event", path: "call-events", list: "rules", label: "Call Events" },
];

export class WebhooksView {
  constructor(root, api, tenant, onAvailability) {
    this.root = root;
    this.api = api;
    this.tenant = tenant;
    this.onAvailability = onAvailability;
    this.available = null;
    this.endpoints = new Map(); // id -> {ep, kind, health}
    this.rows = new Map(); // id -> {tr, cells}
    this.tbody = root.querySelector("table.webhooks tbody");
    this.summary = root.querySelector("[data-role=summary]");
    this.empty = root.querySelector("[data-role=empty]");
    this.deliveries = root.querySelector("[data-role=deliveries]");
    this.openEndpoint = null;
    this.refresh = coalesce(() => this.load(), 1000);
    root.querySelector("[data-role=reload]").onclick = () => this.load();
    root.querySelector("[data-role=close-deliveries]").onclick = () => this.closeDeliveries();
    this.timer = null;
  }

  base() {
    return `/tenants/${encodeURIComponent(this.tenant)}`;
  }

  /** Find out whether this hub has the webhook API; load once if it does. */
  async probe() {
    try {
      await this.load();
      this.setAvailable(true);
    } catch (err) {
      if (isMissingRoute(err)) this.setAvailable(false);
      else if (!isClosed(err)) throw err;
    }
  }

  setAvailable(yes) {
    this.available = yes;
    this.onAvailability(yes);
  }

  show() {
    if (this.available) this.load().catch((err) => console.warn("callhook: webhooks", err));
  }

  onEvents(events) {
    if (!this.available) return;
    // Health changes are events (webhook_events); deliveries follow every other event.
    for (const ev of events) {
      if (ev.topic === "webhook_events") {
        this.refresh();
        return;
      }
    }
    if (!this.root.hidden) this.refresh();
  }

  async load() {
    const lists = await Promise.all(
      KINDS.map((k) =>
        this.api.get(`${this.base()}/${k.path}`).then(
          (data) => ({ k, items: data[k.list] || [] }),
          (err) => {
            if (k.kind === "webhook") throw err; // the probe: no webhook API at all
            return { k, items: [] };
          },
        ),
      ),
    );
    let health = {};
    try {
      health = (await this.api.get(`${this.base()}/dashboard-webhook-health`)).endpoints || {};
    } catch (err) {
      console.warn("callhook: delivery health", err);
    }
    const seen = new Set();
    for (const { k, items } of lists) {
      for (const ep of items) {
        seen.add(ep.id);
        const entry = { ep, kind: k, health: health[ep.id] || null };
        this.endpoints.set(ep.id, entry);
        this.renderRow(entry);
      }
    }
    for (const id of [...this.rows.keys()]) {
      if (!seen.has(id)) {
        this.rows.get(id).tr.remove();
        this.rows.delete(id);
        this.endpoints.delete(id);
      }
    }
    this.empty.hidden = this.endpoints.size > 0;
    this.renderSummary();
    if (this.openEndpoint && this.endpoints.has(this.openEndpoint)) {
      await this.loadDeliveries(this.openEndpoint);
    }
  }

  renderSummary() {
    let bad = 0;
    for (const { ep } of this.endpoints.values()) if (ep.status !== "enabled") bad += 1;
    setText(
      this.summary,
      `${this.endpoints.size} endpoints · ${bad} need attention · health over the last 24 hours`,
    );
  }

  renderRow(entry) {
    const { ep, kind, health } = entry;
    let row = this.rows.get(ep.id);
    if (!row) {
      const cells = {
        endpoint: h("td", {}),
        health: h("td", {}, h("span", { class: "badge" })),
        rate: h("td", { class: "num" }),
        latency: h("td", { class: "num opt" }),
        error: h("td", { class: "last-error" }),
        actions: h("td", { class: "actions" }),
      };
      const tr = h("tr", { dataset: { endpoint: ep.id } }, ...Object.values(cells));
      row = { tr, cells };
      this.rows.set(ep.id, row);
      this.tbody.append(tr);
    }
    const c = row.cells;
    const what =
      kind.kind === "webhook"
        ? `${kind.label}: ${(ep.topics || []).join(", ") || "all topics"}`
        : `${kind.label}: ${ep.event} of ${ep.extension} (${ep.method})`;
    const about = ep.description || ep.notes || "";
    c.endpoint.replaceChildren(
      ...(about ? [h("span", { class: "description" }, about)] : []),
      h("span", { class: "url" }, ep.url),
      h("span", { class: "meta" }, what),
    );
    const badge = c.health.firstChild;
    // The hub's word (enabled, failing, disabled, off), plus ours: an enabled endpoint whose
    // latest attempt failed, like most in the window, is "degraded" (e.g. 4xx answers, which
    // are given up at once and so never make it "failing").
    const degraded =
      ep.status === "enabled" &&
      health &&
      health.attempts >= 3 &&
      health.success_rate < 0.5 &&
      health.last_error_at !== null &&
      health.last_error_at >= health.last_attempt_at;
    setText(badge, degraded ? "Degraded" : STATUS_LABELS[ep.status] || ep.status);
    setAttr(
      badge,
      "class",
      `badge health-${degraded ? "degraded" : HEALTH_CLASS[ep.status] || "off"}`,
    );
    setAttr(row.tr, "data-status", ep.status);
    row.tr.classList.toggle("bad", ep.status === "failing" || ep.status === "disabled");
    setText(
      c.rate,
      health && health.success_rate !== null ? `${Math.round(health.success_rate * 100)}%` : "–",
    );
    setAttr(c.rate, "title", health ? `${health.succeeded_attempts} of ${health.attempts} attempts answered 2xx` : null);
    setText(
      c.latency,
      health && health.latency_avg_ms !== null
        ? `${Math.round(health.latency_avg_ms)} ms`
        : "–",
    );
    setAttr(c.latency, "title", health && health.latency_p95_ms !== null ? `p95 ${Math.round(health.latency_p95_ms)} ms` : null);
    const parts = [];
    if (health && health.last_error) {
      parts.push(`${health.last_error} (${fmtAgo(Date.now() / 1000 - health.last_error_at)})`);
    }
    if (ep.disabled_reason) parts.push(`disabled: ${ep.disabled_reason}`);
    const err = parts.join(" · ");
    setText(c.error, err);
    this.renderActions(c.actions, entry);
  }

  renderActions(td, { ep, kind, health }) {
    const buttons = [];
    const deliveries = h("button", { type: "button", class: "ghost" }, "Deliveries");
    deliveries.onclick = () => this.loadDeliveries(ep.id).catch((e) => announce(e.message));
    buttons.push(deliveries);
    if (ep.status === "disabled" || ep.status === "off") {
      const enable = h("button", { type: "button" }, "Enable");
      enable.onclick = () => this.act(`${this.base()}/${kind.path}/${ep.id}/enable`, "Enabled");
      buttons.push(enable);
    } else if (health && health.last_failed_delivery) {
      const again = h(
        "button",
        { type: "button", class: "danger", "aria-label": `Redeliver the last failed delivery to ${ep.url}` },
        "Redeliver",
      );
      again.onclick = () => this.redeliver(health.last_failed_delivery, again);
      buttons.push(again);
    }
    td.replaceChildren(...buttons);
  }

  async act(path, done) {
    try {
      await this.api.post(path);
      announce(done);
    } catch (err) {
      announce(`Failed: ${err.message}`);
    }
    await this.load();
  }

  async redeliver(deliveryId, button) {
    if (button) button.disabled = true;
    try {
      await this.api.post(`${this.base()}/deliveries/${encodeURIComponent(deliveryId)}/redeliver`);
      if (button) setText(button, "Queued");
      announce("Delivery queued again");
    } catch (err) {
      if (button) setText(button, "Failed");
      announce(`Redeliver failed: ${err.message}`);
    }
    setTimeout(() => this.refresh(), 1000);
  }

  async loadDeliveries(id) {
    const entry = this.endpoints.get(id);
    if (!entry) return;
    this.openEndpoint = id;
    const data = await this.api.get(
      `${this.base()}/${entry.kind.path}/${encodeURIComponent(id)}/deliveries`,
      { limit: 50 },
    );
    const tbody = this.deliveries.querySelector("tbody");
    tbody.replaceChildren(...(data.deliveries || []).map((d) => this.deliveryRow(d)));
    setText(this.deliveries.querySelector("h2"), `Deliveries to ${entry.ep.url}`);
    const wasHidden = this.deliveries.hidden;
    this.deliveries.hidden = false;
    if (wasHidden) this.deliveries.scrollIntoView({ block: "nearest" });
  }

  deliveryRow(d) {
    const failed = Boolean(d.last_error) || (d.last_status_code && d.last_status_code >= 300);
    let result = d.last_error || (d.last_status_code ? `HTTP ${d.last_status_code}` : "");
    if (!d.attempts) result = "not sent yet";
    let again = null;
    if (d.attempts) {
      // Sent at least once: it can be sent again (queued ones just wait their turn).
      again = h("button", { type: "button" }, "Redeliver");
      again.onclick = () => this.redeliver(d.id, again);
    }
    return h(
      "tr",
      { dataset: { delivery: d.id, status: d.status } },
      h("td", { class: "num" }, String(d.seq)),
      h(
        "td",
        {},
        d.event_type,
        h("span", { class: "meta muted small" }, ` ${fmtClock(d.created_at)}`),
      ),
      h("td", {}, h("span", { class: `badge dstatus-${d.status}` }, d.status)),
      h("td", { class: "num" }, String(d.attempts)),
      h(
        "td",
        { class: failed ? "last-error" : "muted small" },
        result,
        failed ? this.responseDetails(d.id) : null,
      ),
      h("td", { class: "actions" }, again),
    );
  }

  /** A failed delivery's "Response": what the endpoint answered, loaded when opened. */
  responseDetails(deliveryId) {
    const body = h("pre", { class: "response" }, "Loading…");
    const details = h("details", { class: "response" }, h("summary", {}, "Response"), body);
    details.ontoggle = async () => {
      if (!details.open || details.dataset.loaded) return;
      details.dataset.loaded = "1";
      try {
        const d = await this.api.get(`${this.base()}/deliveries/${encodeURIComponent(deliveryId)}`);
        const attempts = d.attempt_log || [];
        const last = attempts[attempts.length - 1] || {};
        const head = last.status_code ? `HTTP ${last.status_code}` : last.error || "no answer";
        setText(body, last.response ? `${head}\n\n${last.response}` : `${head} (empty body)`);
      } catch (err) {
        setText(body, `Cannot load it: ${err.message}`);
      }
    };
    return details;
  }

  closeDeliveries() {
    this.openEndpoint = null;
    this.deliveries.hidden = true;
  }
}
