// Talking to the daemon: JSON over fetch, WebSocket URLs, and the login token.

const TOKEN_KEY = "vibetwist.token";

export class ApiError extends Error {
  constructor(message, status = 0) {
    super(message);
    this.status = status; // 0: the daemon could not be reached
  }
}

export class Api {
  constructor(token = null) {
    // A share token, when given, is used instead of any login token.
    this.shareToken = token;
  }

  get token() {
    return this.shareToken || localStorage.getItem(TOKEN_KEY);
  }

  setLoginToken(token) {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  }

  async request(method, path, body) {
    const headers = {};
    const token = this.token;
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch {
      throw new ApiError("The daemon is unreachable: is vibetwist still running?");
    }
    const type = response.headers.get("content-type") || "";
    const value = type.startsWith("application/json") ? await response.json().catch(() => null) : null;
    if (!response.ok) {
      const message = value && value.error ? value.error : `${method} ${path} answered ${response.status}`;
      throw new ApiError(message, response.status);
    }
    return value;
  }

  get(path) {
    return this.request("GET", path);
  }

  post(path, body = {}) {
    return this.request("POST", path, body);
  }

  // ws(s)://host/path with ?token= when there is one.
  socketUrl(path, params = {}) {
    const url = new URL(path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    if (this.token) url.searchParams.set("token", this.token);
    return url.toString();
  }
}
