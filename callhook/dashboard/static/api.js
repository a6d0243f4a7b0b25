// The REST API under /api/v1, with the key from the login form (kept in sessionStorage).

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
  }
}

export class Api {
  /** `onUnauthorized` runs when the key stops working (revoked while the page is open). */
  constructor(key, onUnauthorized = () => {}, scope = null) {
    this.key = key;
    this.onUnauthorized = onUnauthorized;
    this.scope = scope; // AbortSignal: aborted when the views using this Api are gone
  }

  /**
   * An Api for one set of views (one tenant): `close()` aborts its requests in flight, and
   * makes every later one fail, so answers meant for a tenant no longer shown never land.
   */
  scoped() {
    const ctl = new AbortController();
    const api = new Api(this.key, this.onUnauthorized, ctl.signal);
    api.close = () => ctl.abort();
    return api;
  }

  async request(method, path, { params, body, signal } = {}) {
    if (this.scope && this.scope.aborted) throw new ApiError(0, "closed", "closed");
    if (this.scope) signal = signal ? AbortSignal.any([signal, this.scope]) : this.scope;
    let url = `/api/v1${path}`;
    if (params) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") q.set(k, v);
      const s = q.toString();
      if (s) url += `?${s}`;
    }
    const headers = { Authorization: `Bearer ${this.key}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
      credentials: "omit",
    });
    const text = await r.text();
    if (this.scope && this.scope.aborted) throw new ApiError(0, "closed", "closed");
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!r.ok) {
      const err = data && typeof data === "object" ? data.error || {} : {};
      const detail = typeof err === "object" ? err : { message: String(err) };
      if (r.status === 401) this.onUnauthorized();
      throw new ApiError(r.status, detail.code, detail.message || `HTTP ${r.status}`);
    }
    return data;
  }

  get(path, params, signal) {
    return this.request("GET", path, { params, signal });
  }

  post(path, body) {
    return this.request("POST", path, { body: body ?? {} });
  }
}

/** The request belonged to views that are gone (another tenant was opened, or logout). */
export function isClosed(err) {
  return (err instanceof ApiError && err.code === "closed") || (err && err.name === "AbortError");
}

/** A 404 that means "this hub has no such route" rather than "no such object". */
export function isMissingRoute(err) {
  return err instanceof ApiError && err.status === 404 && (!err.code || err.code === "not-found");
}
