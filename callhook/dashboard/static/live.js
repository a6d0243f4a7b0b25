// The live channel: WSI over /ws (auth by a one-time dashboard ticket), else polling the
// events API every second. Either way it resumes from the last seq it handed out, so a
// reconnect neither loses nor repeats an event.
//
// Emits "events" (detail: events in seq order, each seq once) and "status"
// (detail: {state: "connecting" | "live" | "offline", mode: "wsi" | "poll"}).

const POLL_INTERVAL = 1000;
const PING_INTERVAL = 25000;
const PONG_TIMEOUT = 10000;
const WSI_RETRY_AFTER = 5 * 60 * 1000; // after WSI refused us, poll this long before retrying
const MAX_BACKOFF = 5000;

export class LiveFeed extends EventTarget {
  constructor(api, tenant, lastSeq, topics) {
    super();
    this.api = api;
    this.tenant = tenant;
    this.lastSeq = lastSeq;
    this.topics = topics; // {topic: [keys]}
    this.mode = "wsi";
    this.state = "connecting";
    this.stopped = false;
    this.ws = null;
    this.timer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.failures = 0;
    this.liveSince = 0; // when the WSI connection last went live (0: not live)
    this.wsiRefusedAt = 0;
    this.pollAbort = null;
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.clearPing();
    if (this.pollAbort) this.pollAbort.abort();
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "dashboard closed");
      this.ws = null;
    }
  }

  /** Close the socket as a network failure would (tests and the "reconnect" button). */
  drop() {
    if (this.ws) this.ws.close(4000, "dropped by the dashboard");
  }

  setStatus(state) {
    if (this.stopped) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state, mode: this.mode } }));
  }

  /** Hand out events newer than the last seq, in order; older or repeated ones are dropped. */
  deliver(events) {
    const fresh = [];
    for (const ev of events) {
      if (typeof ev.seq === "number" && ev.seq > this.lastSeq) {
        fresh.push(ev);
        this.lastSeq = ev.seq;
      }
    }
    if (fresh.length) this.dispatchEvent(new CustomEvent("events", { detail: fresh }));
  }

  connect() {
    if (this.stopped) return;
    const wsiAllowed = Date.now() - this.wsiRefusedAt > WSI_RETRY_AFTER;
    if (wsiAllowed && "WebSocket" in window) this.connectWsi();
    else this.poll();
  }

  retry() {
    if (this.stopped) return;
    // A connection that stayed live as long as the longest pause starts the pauses again;
    // one dropped sooner does not: a hub or proxy that accepts and closes at once is
    // not reconnected to at the shortest pause for ever.
    if (this.liveSince && Date.now() - this.liveSince >= MAX_BACKOFF) this.failures = 0;
    this.liveSince = 0;
    this.failures += 1;
    const delay = Math.min(MAX_BACKOFF, 500 * 2 ** Math.min(this.failures, 5));
    const jittered = delay * (0.8 + Math.random() * 0.4);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), jittered);
  }

  // WSI ------------------------------------------------------------------------------------
  async connectWsi() {
    this.mode = "wsi";
    this.setStatus("connecting");
    let ticket;
    try {
      ticket = await this.api.post(`/tenants/${encodeURIComponent(this.tenant)}/dashboard-ticket`);
    } catch (err) {
      if (err.status === 404) return this.refuseWsi("no ticket route");
      this.setStatus("offline");
      return this.retry();
    }
    if (this.stopped) return;
    if (!ticket.ws_path) return this.refuseWsi("no WSI server takes dashboard tickets");
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${proto}//${location.host}${ticket.ws_path}`);
    this.ws = ws;
    let phase = "auth"; // auth -> subscribe -> live
    ws.onopen = () => {
      ws.send(JSON.stringify({ command: "auth", name: this.tenant, password: ticket.ticket }));
    };
    ws.onmessage = (msg) => {
      let data;
      try {
        data = JSON.parse(msg.data);
      } catch {
        return;
      }
      if (data && typeof data.event_type === "string") {
        this.deliver([data]);
        return;
      }
      if (Array.isArray(data)) {
        this.deliver(data.filter((ev) => ev && typeof ev.event_type === "string"));
        return;
      }
      if (data && data.pong) {
        clearTimeout(this.pongTimer);
        return;
      }
      if (phase === "auth") {
        if (data.status !== 0) {
          ws.onclose = null;
          ws.close(1000, "auth refused");
          return this.refuseWsi(data.error || "auth refused");
        }
        phase = "subscribe";
        const topics = Object.entries(this.topics).map(([topic, keys]) => ({ topic, keys }));
        ws.send(JSON.stringify({ command: "subscribe", topics, since_seq: this.lastSeq }));
      } else if (phase === "subscribe") {
        if (data.status !== 0) {
          ws.onclose = null;
          ws.close(1000, "subscribe refused");
          return this.refuseWsi(data.error || "subscribe refused");
        }
        phase = "live";
        this.liveSince = Date.now();
        this.setStatus("live");
        this.startPing(ws);
      }
    };
    ws.onclose = () => {
      this.clearPing();
      this.ws = null;
      if (this.stopped) return;
      // The ticket was issued, so the hub is up: a socket that closes before auth is a hub
      // without WSI on /ws (or one that refused the handshake).
      if (phase === "auth") return this.refuseWsi("no WSI on /ws");
      this.setStatus("offline");
      this.retry();
    };
  }

  /** WSI is not usable here (no route, or no ticket auth): poll, and try WSI again later. */
  refuseWsi(reason) {
    console.info(`callhook: live channel by polling (${reason})`);
    this.wsiRefusedAt = Date.now();
    this.ws = null;
    this.poll();
  }

  startPing(ws) {
    this.clearPing();
    this.pingTimer = setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send('{"command":"ping"}');
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => ws.close(4001, "no pong"), PONG_TIMEOUT);
    }, PING_INTERVAL);
  }

  clearPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  }

  // Polling ----------------------------------------------------------------------------------
  async poll() {
    if (this.stopped) return;
    this.mode = "poll";
    if (this.state !== "live") this.setStatus("connecting");
    const path = `/tenants/${encodeURIComponent(this.tenant)}/events`;
    try {
      for (;;) {
        this.pollAbort = new AbortController();
        const page = await this.api.get(
          path,
          { since_seq: this.lastSeq, limit: 1000 },
          this.pollAbort.signal,
        );
        if (this.stopped) return;
        this.deliver(page);
        if (page.length < 1000) break; // caught up
      }
      this.failures = 0;
      if (this.state !== "live") this.setStatus("live");
    } catch (err) {
      if (this.stopped) return;
      this.setStatus("offline");
      return this.retry();
    }
    clearTimeout(this.timer);
    const wsiDue = Date.now() - this.wsiRefusedAt > WSI_RETRY_AFTER;
    this.timer = setTimeout(() => (wsiDue ? this.connect() : this.poll()), POLL_INTERVAL);
  }
}
