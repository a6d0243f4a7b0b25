// Extension presence: one row per extension, keyed by number. Rows are CSS grid rows with
// ARIA table roles, so that `content-visibility: auto` lets the browser skip the layout
// and paint of the ones scrolled out of view (a <tr> cannot be skipped that way). Events name the extensions
// they touch; only those are re-read (GET .../extensions/{n}/state), or the whole tenant
// (GET .../presence) when a batch touches many. Rows are filtered by toggling `hidden`.

import { coalesce, extensionsOf, fmtAgo, h, numberOf, setAttr, setText } from "./dom.js";

const STATUS_LABELS = {
  available: "Available",
  ringing: "Ringing",
  busy: "On a call",
  dnd: "Do not disturb",
  offline: "Offline",
};
const FEW = 16; // up to this many touched extensions: fetch each; more: fetch the tenant

export class PresenceView {
  constructor(root, api, tenant, directory, calls, clock) {
    this.root = root;
    this.api = api;
    this.tenant = tenant;
    this.directory = directory; // Map number -> display name
    this.calls = calls; // CallsView: session id -> call, for "on a call with ..."
    this.clock = clock;
    this.states = new Map(); // number -> presence state
    this.rows = new Map(); // number -> {tr, cells}
    this.body = root.querySelector("[data-role=rows]");
    this.summary = root.querySelector("[data-role=summary]");
    this.search = root.querySelector("[data-role=search]");
    this.statusFilter = root.querySelector("[data-role=status-filter]");
    this.shownCount = root.querySelector("[data-role=shown]");
    this.noExtensions = root.querySelector("[data-role=no-extensions]");
    setText(root.querySelector("[data-role=tenant-name]"), tenant);
    this.pending = new Set();
    this.refresh = coalesce(() => this.flush(), 80);
    // Handlers as properties: a view built for another tenant replaces them.
    this.search.oninput = () => this.applyFilter();
    this.statusFilter.onchange = () => this.applyFilter();
  }

  base() {
    return `/tenants/${encodeURIComponent(this.tenant)}`;
  }

  async load() {
    const data = await this.api.get(`${this.base()}/presence`);
    let added = false;
    for (const st of data.extensions || []) added = this.update(st) || added;
    if (added) {
      // Build the table body once, in extension order (numeric: 99 before 100).
      const frag = document.createDocumentFragment();
      const numbers = [...this.rows.keys()].sort(collator.compare);
      for (const n of numbers) frag.append(this.rows.get(n).tr);
      this.body.append(frag);
    }
    this.afterUpdate();
  }

  onEvents(events) {
    for (const ev of events) {
      // Declared extensions, extensions already shown, and the phone an event is about
      // (an extension the directory does not declare yet still appears, "not configured").
      const own = numberOf(ev.extension);
      for (const n of extensionsOf(ev)) {
        if (this.directory.has(n) || this.states.has(n) || n === own) this.pending.add(n);
      }
    }
    if (this.pending.size) this.refresh();
  }

  /** The calls changed: re-label the "call" cell of the extensions on them. */
  onCallsChanged() {
    for (const [n, st] of this.states) if ((st.sessions || []).length) this.renderCall(n, st);
  }

  async flush() {
    const numbers = [...this.pending];
    this.pending.clear();
    if (!numbers.length) return;
    if (numbers.length > FEW) {
      await this.load();
      return;
    }
    const states = await Promise.all(
      numbers.map((n) =>
        this.api.get(`${this.base()}/extensions/${encodeURIComponent(n)}/state`).catch(() => null),
      ),
    );
    for (const st of states) {
      if (st && this.update(st)) insertSorted(this.body, this.rows.get(String(st.extension)).tr);
    }
    this.afterUpdate();
  }

  afterUpdate() {
    this.applyFilter();
    this.renderSummary();
    this.noExtensions.hidden = this.directory.size > 0;
  }

  /** Render one extension's state; true when its row is new (the caller places it). */
  update(st) {
    const n = String(st.extension);
    this.states.set(n, st);
    let row = this.rows.get(n);
    const added = !row;
    if (!row) {
      const cell = (cls) => h("span", { role: "cell", class: cls });
      const cells = {
        number: h("span", { role: "rowheader", class: "num" }, n),
        name: cell("name-cell"),
        status: h("span", { role: "cell" }, h("span", { class: "badge" })),
        device: cell("opt device"),
        call: cell("call"),
        dnd: cell("flag opt"), // on a phone the status badge says "Do not disturb"
        forward: cell("flag opt"),
        seen: cell("opt seen"),
      };
      const tr = h("div", { role: "row", class: "grow", dataset: { ext: n } }, ...Object.values(cells));
      row = { tr, cells };
      this.rows.set(n, row);
    }
    const c = row.cells;
    const configured = st.configured !== false;
    setText(c.name, this.directory.get(n) || (configured ? "" : "not configured"));
    setAttr(c.name, "title", configured ? null : "A phone reports this extension, but the configuration does not declare it");
    row.tr.classList.toggle("unconfigured", !configured);
    const badge = c.status.firstChild;
    setText(badge, STATUS_LABELS[st.status] || st.status || "");
    setAttr(badge, "class", `badge status-${st.status || "unknown"}`);
    setAttr(row.tr, "data-status", st.status || "");
    setText(c.device, deviceLabel(st));
    setAttr(c.device, "title", deviceTitle(st));
    this.renderCall(n, st);
    setText(c.dnd, st.dnd ? "DND" : "");
    setText(c.forward, st.forward ? "Forwarding" : "");
    this.renderSeen(row, st);
    return added;
  }

  renderCall(n, st) {
    const row = this.rows.get(n);
    const sessions = st.sessions || [];
    let text = "";
    if (sessions.length) {
      const call = this.calls.calls.get(sessions[0]);
      if (call) {
        const caller = numberOf(call.caller);
        const peer = caller === n ? numberOf(call.callee) : caller;
        text = `${st.ringing ? "ringing from" : "with"} ${peer || "unknown"}`;
      } else {
        text = st.ringing ? "ringing" : "on a call";
      }
      if (sessions.length > 1) {
        const more = sessions.length - 1;
        text += ` (+${more} more call${more === 1 ? "" : "s"})`;
      }
    } else if (st.hook === "off_hook") {
      text = "off hook";
    }
    setText(row.cells.call, text);
    setAttr(row.cells.call, "title", text || null);
  }

  renderSeen(row, st) {
    const last = Number(st.last_seen) || 0;
    setText(row.cells.seen, last ? fmtAgo(this.clock() - last) : "never");
  }

  /** Refresh the "last seen" texts (they age without any event). */
  tick() {
    for (const [n, row] of this.rows) this.renderSeen(row, this.states.get(n));
  }

  applyFilter() {
    const q = this.search.value.trim().toLowerCase();
    const status = this.statusFilter.value;
    let shown = 0;
    for (const [n, row] of this.rows) {
      const st = this.states.get(n);
      let ok = !q || n.includes(q) || (this.directory.get(n) || "").toLowerCase().includes(q);
      if (ok && status) {
        if (status === "registered") ok = Boolean(st.registered);
        else if (status === "oncall") ok = (st.sessions || []).length > 0;
        else ok = st.status === status;
      }
      if (row.tr.hidden === ok) row.tr.hidden = !ok;
      if (ok) shown += 1;
    }
    setText(this.shownCount, shown === this.rows.size ? "" : `${shown} shown`);
  }

  renderSummary() {
    let registered = 0;
    let oncall = 0;
    let ringing = 0;
    let dnd = 0;
    for (const st of this.states.values()) {
      if (st.registered) registered += 1;
      if (st.status === "busy") oncall += 1;
      if (st.ringing) ringing += 1;
      if (st.dnd) dnd += 1;
    }
    setText(
      this.summary,
      `${this.states.size} extensions · ${registered} registered · ${oncall} on a call · ` +
        `${ringing} ringing · ${dnd} DND`,
    );
  }
}

function deviceLabel(st) {
  const contacts = st.contacts || [];
  const d = st.device || {};
  const agent = (contacts[0] && contacts[0].user_agent) || d.product || "";
  const ip = (contacts[0] && contacts[0].public_address) || d.phone_ip || "";
  let label = [agent, ip].filter(Boolean).join(" · ");
  if (contacts.length > 1) {
    const more = contacts.length - 1;
    label += ` (+${more} more phone${more === 1 ? "" : "s"})`;
  }
  return label || (st.registered ? "registered" : "");
}

function deviceTitle(st) {
  const d = st.device || {};
  const parts = [];
  if (d.mac) parts.push(`MAC ${d.mac}`);
  if (d.program_version) parts.push(`firmware ${d.program_version}`);
  for (const c of st.contacts || []) if (c.contact_uri) parts.push(c.contact_uri);
  return parts.join("\n") || null;
}

const collator = new Intl.Collator(undefined, { numeric: true });

/** Insert one new row into `body`, keeping extension order. */
function insertSorted(body, tr) {
  const n = tr.dataset.ext;
  for (const other of body.children) {
    if (collator.compare(other.dataset.ext, n) > 0) {
      body.insertBefore(tr, other);
      return;
    }
  }
  body.append(tr);
}
