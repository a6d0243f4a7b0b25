// The event stream: newest first, at most MAX_ROWS rows in the DOM, filterable by extension,
// topic and key, pausable. Each row is a <details> whose JSON is rendered when first opened.
// Incoming events are batched: one DOM update per animation frame however many arrive.

import { extensionsOf, fmtClock, h, numberOf, perFrame, setText } from "./dom.js";

const MAX_ROWS = 500;
const MAX_KEPT = 5000; // events kept in memory for re-filtering

export class StreamView {
  constructor(root, topics) {
    this.root = root;
    this.topics = topics; // {topic: [keys]}
    this.events = []; // oldest first, capped at MAX_KEPT
    this.incoming = []; // arrived since the last frame (or while paused)
    this.paused = false;
    this.list = root.querySelector("[data-role=list]");
    this.status = root.querySelector("[data-role=status]");
    this.pauseButton = root.querySelector("[data-role=pause]");
    this.fExtension = root.querySelector("[data-role=f-extension]");
    this.fTopic = root.querySelector("[data-role=f-topic]");
    this.fKey = root.querySelector("[data-role=f-key]");
    this.flushSoon = perFrame(() => this.flush());
    this.fillTopics();
    // Handlers as properties: a view built for another tenant replaces them.
    this.fTopic.onchange = () => {
      this.fillKeys();
      this.rerender();
    };
    this.fKey.onchange = () => this.rerender();
    let typing = null;
    this.fExtension.oninput = () => {
      clearTimeout(typing);
      typing = setTimeout(() => this.rerender(), 150);
    };
    this.pauseButton.onclick = () => this.setPaused(!this.paused);
    this.root.querySelector("[data-role=clear]").onclick = () => this.clear();
    this.setPaused(false);
  }

  fillTopics() {
    this.fTopic.replaceChildren(h("option", { value: "" }, "All topics"));
    for (const topic of Object.keys(this.topics)) this.fTopic.append(h("option", { value: topic }, topic));
    this.fillKeys();
  }

  fillKeys() {
    const topic = this.fTopic.value;
    const keys = topic ? this.topics[topic] : Object.values(this.topics).flat();
    const current = this.fKey.value;
    this.fKey.replaceChildren(h("option", { value: "" }, "All keys"));
    for (const key of keys) this.fKey.append(h("option", { value: key }, key));
    this.fKey.value = keys.includes(current) ? current : "";
  }

  /** Replace everything with `events` (oldest first), e.g. the snapshot of a tenant. */
  reset(events) {
    this.events = events.slice(-MAX_KEPT);
    this.incoming = [];
    this.rerender();
  }

  add(events) {
    this.incoming.push(...events);
    if (!this.paused) this.flushSoon();
    else this.renderStatus();
  }

  setPaused(paused) {
    this.paused = paused;
    this.pauseButton.setAttribute("aria-pressed", String(paused));
    setText(this.pauseButton, paused ? "Resume" : "Pause");
    // Screen readers: no announcements of rows that are not being added.
    this.list.setAttribute("aria-live", paused ? "off" : "polite");
    if (!paused) this.flush();
    else this.renderStatus();
  }

  clear() {
    this.events = [];
    this.incoming = [];
    this.list.replaceChildren();
    this.renderStatus();
  }

  matches(ev) {
    const topic = this.fTopic.value;
    if (topic && ev.topic !== topic) return false;
    const key = this.fKey.value;
    if (key && ev.event_type !== key) return false;
    const ext = this.fExtension.value.trim();
    if (ext && !extensionsOf(ev).has(ext)) return false;
    return true;
  }

  /** Move incoming events into the list: one fragment, prepended, then trim the tail. */
  flush() {
    if (this.paused || !this.incoming.length) return;
    const batch = this.incoming;
    this.incoming = [];
    this.events.push(...batch);
    if (this.events.length > MAX_KEPT) this.events.splice(0, this.events.length - MAX_KEPT);
    const shown = batch.filter((ev) => this.matches(ev)).slice(-MAX_ROWS);
    if (shown.length) {
      const frag = document.createDocumentFragment();
      for (let i = shown.length - 1; i >= 0; i -= 1) frag.append(row(shown[i]));
      this.list.prepend(frag);
      while (this.list.childElementCount > MAX_ROWS) this.list.lastElementChild.remove();
    }
    this.renderStatus();
  }

  rerender() {
    const shown = [];
    for (let i = this.events.length - 1; i >= 0 && shown.length < MAX_ROWS; i -= 1) {
      if (this.matches(this.events[i])) shown.push(this.events[i]);
    }
    const frag = document.createDocumentFragment();
    for (const ev of shown) frag.append(row(ev));
    this.list.replaceChildren(frag);
    this.renderStatus();
  }

  renderStatus() {
    const rows = this.list.childElementCount;
    let text = rows ? `Showing the newest ${rows} matching events` : "No matching events yet";
    if (rows >= MAX_ROWS) text += ` (at most ${MAX_ROWS})`;
    if (this.paused) text += ` · paused, ${this.incoming.length} new`;
    setText(this.status, text);
  }
}

/** One event: a summary line that expands to the event's JSON. */
function row(ev) {
  const details = h(
    "details",
    {},
    h(
      "summary",
      {},
      h("span", { class: "seq" }, `#${ev.seq}`),
      h("time", { datetime: isoTime(ev.time) }, fmtClock(ev.time)),
      h("span", { class: `key topic-${ev.topic}` }, ev.event_type),
      h("span", { class: "what" }, describe(ev)),
    ),
  );
  details.addEventListener(
    "toggle",
    () => {
      if (details.open && !details.querySelector("pre")) {
        details.append(h("pre", { tabindex: "0" }, JSON.stringify(ev, null, 2)));
      }
    },
    { passive: true },
  );
  return h("li", { dataset: { seq: ev.seq, key: ev.event_type, topic: ev.topic } }, details);
}

function isoTime(t) {
  const d = new Date(Number(t) * 1000);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** A few words on what happened: parties, the extension, or the status of a CDR. */
function describe(ev) {
  const caller = numberOf(ev.caller);
  const callee = numberOf(ev.callee);
  const parts = [];
  if (caller || callee) parts.push(`${caller || "?"} → ${callee || "?"}`);
  else if (ev.extension) parts.push(numberOf(ev.extension));
  else if (ev.aor) parts.push(`${numberOf(ev.aor)} ↔ ${numberOf(ev.peer_aor)}`);
  const target = numberOf(ev.call_target);
  if (target && ev.event_type.startsWith("target_")) parts.push(`at ${target}`);
  if (ev.status && ev.event_type === "call_cdr") parts.push(String(ev.status));
  if (ev.reason) parts.push(String(ev.reason));
  if (ev.end_reason) parts.push(String(ev.end_reason));
  if (ev.fail_code) parts.push(`fail ${ev.fail_code}`);
  if (ev.event_name) parts.push(String(ev.event_name));
  return parts.join(" · ");
}
