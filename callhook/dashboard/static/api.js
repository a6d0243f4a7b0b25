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
  constructor(key, onUnauthorized = () => {}) {
    this.key = key;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { params, body, signal } = {}) {
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

/** A 404 that means "this hub has no such route" rather than "no such object". */
export function isMissingRoute(err) {
  return err instanceof ApiError && err.status === 404 && (!err.code || err.code === "not-found");
}
