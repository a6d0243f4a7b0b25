// The dashboard's entry point: login, tenant choice, view routing, and wiring the live
// channel to the views. The API key lives in sessionStorage only (gone with the tab).

import { Api, ApiError, isClosed } from "./api.js";
import { CallsView } from "./calls.js";
import { announce, setText } from "./dom.js";
import { LiveFeed } from "./live.js";
import { PhonesView } from "./phones.js";
import { PresenceView } from "./presence.js";
import { StatsView } from "./stats.js";
import { StreamView } from "./stream.js";
import { WebhooksView } from "./webhooks.js";

const META = JSON.parse(document.getElementById("callhook-meta").textContent);
const KEY_ITEM = "callhook.key";
const TENANT_ITEM = "callhook.tenant";
const VIEWS = ["live", "events", "webhooks", "phones"];
const $ = (sel) => document.querySelector(sel);

class Dashboard {
  constructor() {
    this.api = null;
    this.tenantApi = null;
    this.session = null;
    this.tenant = null;
    this.feed = null;
    this.views = null;
    this.timers = [];
    this.clockOffset = 0; // server time - browser time, seconds
    $("#login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.login($("#login-key").value.trim());
    });
    $("#logout").addEventListener("click", () => this.logout());
    $("#tenant-select").addEventListener("change", (e) => this.openTenant(e.target.value));
    window.addEventListener("hashchange", () => this.route());
  }

  async start() {
    const key = sessionStorage.getItem(KEY_ITEM);
    if (key) await this.login(key, { quiet: true });
    else this.showLogin();
  }

  showLogin(message = "") {
    this.closeTenant();
    document.body.dataset.auth = "out";
    $(".views").hidden = true;
    $(".session").hidden = true;
    for (const v of VIEWS) $(`#view-${v}`).hidden = true;
    $("#view-login").hidden = false;
    setText($("#login-error"), message);
    $("#login-key").value = "";
    $("#login-key").focus();
  }

  async login(key, { quiet = false } = {}) {
    if (!key) return;
    const api = new Api(key, () => this.logout("The key is no longer accepted. Sign in again."));
    let session;
    try {
      session = await api.get("/dashboard/session");
    } catch (err) {
      const status = err instanceof ApiError ? err.status : 0;
      if (status === 401) {
        sessionStorage.removeItem(KEY_ITEM);
        this.showLogin(quiet ? "" : "Unknown or revoked key.");
      } else if (status === 429) {
        this.showLogin("Too many failed attempts; wait a minute.");
      } else if (quiet) {
        // A reload while the hub restarts: keep the key and try again.
        this.showLogin("Cannot reach the hub; retrying…");
        setTimeout(() => {
          if (!this.api && sessionStorage.getItem(KEY_ITEM) === key) this.login(key, { quiet });
        }, 3000);
      } else {
        this.showLogin(`Cannot reach the hub: ${err.message}`);
      }
      return;
    }
    sessionStorage.setItem(KEY_ITEM, key);
    this.api = api;
    this.session = session;
    document.body.dataset.auth = "in";
    document.body.dataset.role = session.role;
    $("#view-login").hidden = true;
    $(".views").hidden = false;
    $(".session").hidden = false;
    const select = $("#tenant-select");
    select.replaceChildren(
      ...session.tenants.map((t) => new Option(`${t.name} (${t.extensions} ext.)`, t.name)),
    );
    select.disabled = session.tenants.length < 2;
    if (!session.tenants.length) {
      this.showLogin("This key sees no tenant.");
      return;
    }
    const remembered = sessionStorage.getItem(TENANT_ITEM);
    const names = session.tenants.map((t) => t.name);
    const tenant = names.includes(remembered) ? remembered : names[0];
    select.value = tenant;
    if (!location.hash) history.replaceState(null, "", "#/live");
    // The form that had focus is gone: start keyboard navigation at the content.
    if (!quiet) $("#main").focus();
    await this.openTenant(tenant);
  }

  logout(message = "") {
    sessionStorage.removeItem(KEY_ITEM);
    sessionStorage.removeItem(TENANT_ITEM);
    this.api = null;
    this.showLogin(message);
  }

  closeTenant() {
    if (this.tenantApi) this.tenantApi.close();
    this.tenantApi = null;
    if (this.feed) this.feed.stop();
    this.feed = null;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    if (this.views) this.views.stats.dispose();
    this.views = null;
    this.tenant = null;
  }

  now() {
    return Date.now() / 1000 + this.clockOffset;
  }

  async openTenant(tenant) {
    this.closeTenant();
    this.tenant = tenant;
    sessionStorage.setItem(TENANT_ITEM, tenant);
    document.body.dataset.tenant = tenant;
    this.onStatus({ state: "connecting", mode: "wsi" });
    const api = this.api.scoped();
    this.tenantApi = api;
    const enc = encodeURIComponent(tenant);
    let snap;
    try {
      snap = await api.get(`/tenants/${enc}/dashboard-snapshot`, { events: 300 });
    } catch (err) {
      if (isClosed(err)) return;
      this.onStatus({ state: "offline", mode: "poll" });
      setTimeout(() => {
        if (this.tenantApi === api) this.openTenant(tenant);
      }, 3000);
      return;
    }
    this.clockOffset = snap.server_time - Date.now() / 1000;
    const directory = new Map(snap.directory.map((e) => [e.number, e.display_name]));
    const clock = () => this.now();
    resetTables();
    const calls = new CallsView($("#calls"), api, tenant, directory, clock);
    const presence = new PresenceView($("#presence"), api, tenant, directory, calls, clock);
    const stats = new StatsView($("#view-live"), api, tenant);
    const stream = new StreamView($("#view-events .stream"), META.topics);
    const webhooks = new WebhooksView($("#view-webhooks"), api, tenant, (available) => {
      $('.views a[data-view="webhooks"]').hidden = !available;
      if (!available && this.currentView() === "webhooks") location.hash = "#/live";
    });
    const phones = new PhonesView($("#view-phones"), api, tenant, META.vendors, META.models, {
      loopbackOnly: Boolean(this.session && this.session.loopback_only),
    });
    this.views = { calls, presence, stats, stream, webhooks, phones };
    calls.addEventListener("change", () => presence.onCallsChanged());
    stream.reset(snap.events);

    const feed = new LiveFeed(api, tenant, snap.last_seq, META.topics);
    this.feed = feed;
    feed.addEventListener("events", (e) => this.onEvents(e.detail));
    feed.addEventListener("status", (e) => this.onStatus(e.detail));
    feed.start();

    this.timers.push(setInterval(() => calls.tick(), 1000));
    this.timers.push(setInterval(() => presence.tick(), 30000));
    // The calls table is also re-read now and then: a call closed by a timeout on a quiet
    // hub is still an event, but this also heals anything a lost frame left behind.
    this.timers.push(setInterval(() => calls.refresh(), 15000));

    const loads = [calls.load(), presence.load(), stats.load(), webhooks.probe()];
    const results = await Promise.allSettled(loads);
    if (api !== this.tenantApi) return; // another tenant (or logout) meanwhile
    for (const r of results) if (r.status === "rejected") console.warn("callhook:", r.reason);
    presence.onCallsChanged();
    this.route();
  }

  onEvents(events) {
    if (!this.views) return;
    const v = this.views;
    v.stream.add(events);
    v.calls.onEvents(events);
    v.presence.onEvents(events);
    v.stats.onEvents(events);
    v.webhooks.onEvents(events);
    const conn = $("#conn");
    conn.dataset.lastSeq = String(this.feed.lastSeq);
  }

  onStatus({ state, mode }) {
    const conn = $("#conn");
    const was = conn.dataset.state;
    conn.dataset.state = state;
    conn.dataset.mode = mode;
    conn.dataset.lastSeq = String(this.feed ? this.feed.lastSeq : 0);
    const how = mode === "wsi" ? "WebSocket" : "polling";
    const text = { live: "Live", connecting: "Connecting…", offline: "Reconnecting…" }[state];
    setText(conn.querySelector(".conn-text"), text);
    setText(conn.querySelector(".conn-mode"), state === "live" ? ` (${how})` : "");
    conn.title = state === "live" ? `Live updates by ${how}` : "";
    if (was && was !== state && (state === "offline" || (state === "live" && was === "offline"))) {
      announce(state === "live" ? "Live updates resumed" : "Connection lost, reconnecting");
    }
  }

  currentView() {
    const name = location.hash.replace(/^#\/?/, "");
    return VIEWS.includes(name) ? name : "live";
  }

  route() {
    if (!this.api) return;
    let view = this.currentView();
    if (view === "webhooks" && $('.views a[data-view="webhooks"]').hidden) view = "live";
    for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
    for (const a of document.querySelectorAll(".views a")) {
      if (a.dataset.view === view) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.body.dataset.view = view;
    if (this.views) {
      if (view === "phones") this.views.phones.show();
      if (view === "webhooks") this.views.webhooks.show();
    }
  }
}

/** Empty the tables of a previous tenant (views keep their rows in keyed maps). */
function resetTables() {
  const bodies = "#view-live tbody, #view-webhooks tbody, #presence [data-role=rows]";
  for (const tb of document.querySelectorAll(bodies)) {
    tb.replaceChildren();
  }
  $("#view-phones [data-role=urls]").replaceChildren();
  $("#view-webhooks [data-role=deliveries]").hidden = true;
}

new Dashboard().start();
