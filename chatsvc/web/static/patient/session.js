// The guest patient's identity: a token from POST /api/session, kept in localStorage.
//
// The widget runs in an iframe from chatsvc's own origin, so this storage is out of the host
// page's reach. Keeping the token (rather than asking for a new one per load) is what lets a
// reload, or a new tab, carry on with the same queue place or consultation: the server restores
// state per user id. Before the token runs out it is renewed (same user id, new token).
// Never log or show the token.

const STORAGE_KEY = "chatsvc.patient.session";
// Renew when less than this is left: more than the server's 60 s `token_expiring` warning, so a
// reconnect never presents a token the server would refuse as expired a moment later.
const RENEW_BEFORE_S = 120;

export class SessionError extends Error {
  // code: "rate_limited" (429: too many new sessions from this address), "unavailable" or "failed".
  constructor(code, message, retryAfterS = null) {
    super(message);
    this.code = code;
    this.retryAfterS = retryAfterS;
  }
}

function load() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    if (stored && typeof stored.token === "string" && typeof stored.expires_at === "number") return stored;
  } catch {
    // A damaged entry: start afresh.
  }
  return null;
}

function save(session) {
  localStorage.setItem(
    STORAGE_KEY,
    JSON.stringify({ token: session.token, user_id: session.user_id, expires_at: session.expires_at }),
  );
  return session;
}

async function post(path, token = null) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, cache: "no-store" });
  } catch {
    throw new SessionError("unavailable", "network");
  }
  if (response.status === 429) {
    const retryAfter = Number(response.headers.get("Retry-After")) || 60;
    throw new SessionError("rate_limited", "too many new sessions", retryAfter);
  }
  if (response.status === 401 || response.status === 403) throw new SessionError("failed", String(response.status));
  if (!response.ok) throw new SessionError("unavailable", String(response.status));
  return response.json();
}

const nowS = () => Date.now() / 1000;

export class GuestSession {
  constructor() {
    this.current = load();
    this._inflight = null;
  }

  get userId() {
    return this.current ? this.current.user_id : null;
  }

  // A valid token: the stored one, renewed when it is close to expiry, else a new guest session.
  // Concurrent callers share one request.
  token() {
    if (this.current && this.current.expires_at - nowS() > RENEW_BEFORE_S) return Promise.resolve(this.current.token);
    if (!this._inflight) {
      this._inflight = this._refresh().finally(() => {
        this._inflight = null;
      });
    }
    return this._inflight;
  }

  // For Connection's renewToken: a new token for the same user (null when that cannot be had).
  async renew() {
    if (!this.current || this.current.expires_at <= nowS()) return null;
    try {
      return save((this.current = await post("/api/session/renew", this.current.token))).token;
    } catch {
      return null;
    }
  }

  // Forget the stored identity (the server refused it): the next token() starts a new guest.
  forget() {
    this.current = null;
    localStorage.removeItem(STORAGE_KEY);
  }

  async _refresh() {
    if (this.current && this.current.expires_at > nowS() + 5) {
      const renewed = await this.renew();
      if (renewed) return renewed;
    }
    this.current = save(await post("/api/session"));
    return this.current.token;
  }
}
