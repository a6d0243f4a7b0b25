// Small DOM and formatting helpers shared by the views. No framework: keyed updates by hand.

/** Create an element: h("td", {class: "x", text: "y", "aria-label": "z"}, child, ...). */
export function h(tag, props = {}, ...children) {
  const el = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") el.textContent = v;
    else if (k === "class") el.setAttribute("class", v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** Set textContent only when it changes (no needless layout work). */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** Set an attribute only when it changes; null removes it. */
export function setAttr(el, name, value) {
  if (value === null || value === undefined) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

/** "sip:102@acme.example.com" -> "102"; a bare number stays as it is. */
export function numberOf(address) {
  if (typeof address !== "string" || address === "") return "";
  const user = /^sips?:/.test(address) ? address.slice(address.indexOf(":") + 1) : address;
  return user.split("@", 1)[0];
}

/** Seconds -> "0:07", "12:34", "1:02:03". */
export function fmtDuration(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
}

/** Seconds ago -> "just now", "5 min ago", "3 h ago", "2 d ago". */
export function fmtAgo(seconds) {
  if (!Number.isFinite(seconds)) return "never";
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

// One formatter for every row: toLocaleTimeString(options) builds a new one per call,
// which costs about a millisecond each: too slow for hundreds of events per second.
const CLOCK = new Intl.DateTimeFormat([], {
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

/** Unix seconds -> "14:03:27" in the browser's time zone. */
export function fmtClock(unixSeconds) {
  const d = new Date(Number(unixSeconds) * 1000);
  if (Number.isNaN(d.getTime())) return "";
  return CLOCK.format(d);
}

/** Wrap `fn` so that many calls within one frame run it once, on the next animation frame. */
export function perFrame(fn) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn();
    });
  };
}

/**
 * Run async `fn` after `delay` ms of quiet, never twice at once; calls made while it runs
 * schedule one more run afterwards (so the last state is always fetched).
 */
export function coalesce(fn, delay = 100) {
  let timer = null;
  let running = false;
  let again = false;
  const run = async () => {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await fn();
    } catch (err) {
      if (!(err && (err.code === "closed" || err.name === "AbortError"))) {
        console.warn("callhook: refresh failed", err);
      }
    } finally {
      running = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  };
  const schedule = () => {
    if (timer === null) timer = setTimeout(run, delay);
  };
  return schedule;
}

/** Announce a short message to screen readers through the page's polite live region. */
export function announce(message) {
  const region = document.getElementById("announcer");
  if (!region) return;
  region.textContent = "";
  // A new text node after a tick makes screen readers read a repeated message again.
  setTimeout(() => {
    region.textContent = message;
  }, 30);
}

/** Event fields that name extensions, in the PortSIP wire format. */
const ADDRESS_FIELDS = ["extension", "caller", "callee", "aor", "peer_aor", "call_target"];

/** The extension numbers an event is about (addresses, plus a CDR's `extensions`). */
export function extensionsOf(ev) {
  const out = new Set();
  for (const f of ADDRESS_FIELDS) {
    const n = numberOf(ev[f]);
    if (n) out.add(n);
  }
  if (Array.isArray(ev.extensions)) for (const n of ev.extensions) out.add(String(n));
  return out;
}
