// Active calls of the tenant: one row per session, keyed by session_id, durations ticking.
// The hub's correlator is the source of truth: call events make us re-read GET .../calls
// (coalesced), so what is shown is what the hub decided, never a guess of ours.

import { announce, coalesce, fmtDuration, h, numberOf, setAttr, setText } from "./dom.js";

// The hub says `ext` for a call between two extensions of the tenant; people say "internal".
const DIRECTION_LABELS = { ext: "internal", inbound: "inbound", outbound: "outbound" };

const STATE_LABELS = {
  dialing: "Dialing",
  ringing: "Ringing",
  established: "Talking",
  held: "On hold",
  transferring: "Transferring",
};

export class CallsView extends EventTarget {
  constructor(root, api, tenant, directory, clock) {
    super();
    this.root = root;
    this.api = api;
    this.tenant = tenant;
    this.directory = directory; // Map number -> display name
    this.clock = clock; // () => server time now, in seconds
    this.calls = new Map(); // session_id -> call
    this.rows = new Map(); // session_id -> {tr, cells}
    this.tbody = root.querySelector("tbody");
    this.count = root.querySelector("[data-role=count]");
    this.empty = root.querySelector("[data-role=empty]");
    this.refresh = coalesce(() => this.load(), 80);
  }

  async load() {
    const data = await this.api.get(`/tenants/${encodeURIComponent(this.tenant)}/calls`, {
      active: "true",
    });
    this.apply(data.calls || []);
  }

  /** Replace the set of calls with `calls`, touching only rows that changed. */
  apply(calls) {
    const seen = new Set();
    for (const call of calls) {
      seen.add(call.session_id);
      this.calls.set(call.session_id, call);
      this.renderRow(call);
    }
    for (const id of [...this.rows.keys()]) {
      if (!seen.has(id)) {
        this.rows.get(id).tr.remove();
        this.rows.delete(id);
        this.calls.delete(id);
      }
    }
    // Oldest first; move only rows that are out of place.
    const order = [...this.calls.values()].sort(
      (a, b) =>
        Number(a.start_time || 0) - Number(b.start_time || 0) || byId(a.session_id, b.session_id),
    );
    order.forEach((call, i) => {
      const tr = this.rows.get(call.session_id).tr;
      if (this.tbody.children[i] !== tr) this.tbody.insertBefore(tr, this.tbody.children[i] || null);
    });
    setText(this.count, String(this.calls.size));
    this.empty.hidden = this.calls.size > 0;
    this.tick();
    this.dispatchEvent(new CustomEvent("change"));
  }

  onEvents(events) {
    for (const ev of events) {
      if (ev.topic === "extension_events" && /^(call_|target_)/.test(ev.event_type)) {
        this.refresh();
        return;
      }
    }
  }

  party(address, displayName) {
    const n = numberOf(address) || "unknown";
    const name = displayName || this.directory.get(n) || "";
    return { n, name };
  }

  renderRow(call) {
    let row = this.rows.get(call.session_id);
    if (!row) {
      const cells = {
        caller: h("td", { class: "party" }),
        callee: h("td", { class: "party" }),
        // On a phone the duration column is hidden and shown next to the state instead.
        state: h("td", {}, h("span", { class: "badge" }), h("span", { class: "duration inline" })),
        duration: h("td", { class: "num duration opt" }),
        direction: h("td", { class: "opt" }),
        actions: h("td", { class: "actions" }),
      };
      cells.actions.append(this.endButton(call.session_id));
      const tr = h(
        "tr",
        { dataset: { session: call.session_id } },
        cells.caller,
        cells.callee,
        cells.state,
        cells.duration,
        cells.direction,
        cells.actions,
      );
      row = { tr, cells };
      this.rows.set(call.session_id, row);
      this.tbody.append(tr);
    }
    const caller = this.party(call.caller, call.caller_display_name);
    const callee = this.party(call.callee);
    setParty(row.cells.caller, caller);
    const answeredBy = numberOf(call.call_target);
    setParty(row.cells.callee, callee, answeredBy && answeredBy !== callee.n ? answeredBy : "");
    const badge = row.cells.state.firstChild;
    setText(badge, STATE_LABELS[call.state] || call.state || "");
    setAttr(badge, "class", `badge state-${call.state || "unknown"}`);
    setAttr(row.tr, "data-state", call.state || "");
    setText(row.cells.direction, DIRECTION_LABELS[call.direction] || call.direction || "");
  }

  /** "End": ends a stuck call on the hub (POST .../calls/{id}/end), after a second click
   * that confirms it; the hub's events then remove the row like any other end. */
  endButton(sessionId) {
    const button = h("button", { type: "button", class: "ghost", "aria-label": "End this call" }, "End");
    let armed = null;
    button.addEventListener("click", async () => {
      if (!armed) {
        setText(button, "Confirm end");
        setAttr(button, "class", "danger");
        setAttr(button, "aria-label", "Confirm: end this call now");
        armed = setTimeout(() => {
          armed = null;
          setText(button, "End");
          setAttr(button, "class", "ghost");
          setAttr(button, "aria-label", "End this call");
        }, 5000);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      const path = `/tenants/${encodeURIComponent(this.tenant)}/calls/${encodeURIComponent(sessionId)}/end`;
      try {
        await this.api.post(path);
        announce("Call ended");
      } catch (err) {
        setText(button, "Failed");
        announce(`Ending the call failed: ${err.message}`);
      }
      this.refresh();
    });
    return button;
  }

  /** Update every duration cell: talk time once answered, else time since the call began. */
  tick() {
    const now = this.clock();
    for (const [id, row] of this.rows) {
      const call = this.calls.get(id);
      const answered = Number(call.answer_time) || 0;
      const started = Number(call.start_time) || now;
      const secs = answered ? now - answered : now - started;
      setText(row.cells.duration, fmtDuration(secs));
      setText(row.cells.state.lastChild, fmtDuration(secs));
      setAttr(
        row.cells.duration,
        "title",
        answered ? "talk time" : call.state === "ringing" ? "ringing for" : "time since start",
      );
    }
  }
}

/** Session ids are numeric strings, roughly time-ordered: compare them as numbers. */
function byId(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}

function setParty(td, { n, name }, via = "") {
  let num = td.querySelector(".n");
  if (!num) {
    num = h("span", { class: "n" });
    td.append(num, h("span", { class: "name" }), h("span", { class: "via" }));
  }
  setText(num, n);
  setText(td.querySelector(".name"), name);
  setText(td.querySelector(".via"), via ? `answered by ${via}` : "");
}
