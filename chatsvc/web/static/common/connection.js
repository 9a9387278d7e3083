// One WebSocket session with the gateway, kept alive across drops.
//
// Speaks the JSON encoding of the protocol (docs/protocol.md). It owns:
// - the socket: hello first, reconnect with back-off and jitter after a drop, a `ping` every
//   PING_EVERY_MS that must be answered (a socket that stays open but deaf is replaced);
// - requests: each gets an id; a reply with that `ref` settles it. A request in flight when the
//   socket drops is sent again, with the same id, once the new socket is open: the desk keeps the
//   first result of a command per id, so a retry never acts twice (and `send` is deduplicated by
//   `client_msg_id` besides). `unavailable` is retried the same way after a pause;
// - the threads: for each consultation it holds, the messages in seq order, without gap or
//   duplicate. After a reconnect `hello` carries `resume` with the last (epoch, seq) of each
//   thread, so the server sends exactly what was missed.
// What to show is the page's business: it listens to the events below.
//
// Events (addEventListener):
//   "state"   detail: {state, code, reason}  state is "connecting", "open", "reconnecting",
//             "closed" (by us) or "failed" (the server refused us: bad token, too many tabs)
//   "frame"   detail: frame              every frame from the server, after the threads saw it
//   "message" detail: {consultation, entry, live}  a new message in a thread, in seq order
//   "reset"   detail: {consultation}      a thread was dropped; its messages come again from 1

const PROTOCOL = "chatsvc.json";
const REQUEST_TIMEOUT_MS = 20000;
const PING_EVERY_MS = 20000;
const PONG_TIMEOUT_MS = 10000;
// Back-off after a drop: the first retry at once (a 1012 restart wants a quick return), then
// doubling up to the cap, each with up to 50 % jitter so a restarted gateway's clients spread out.
const BACKOFF_FIRST_MS = 250;
const BACKOFF_MAX_MS = 8000;
const UNAVAILABLE_RETRY_MS = 1000;
const UNAVAILABLE_RETRIES = 10;
// Close codes after which reconnecting as we are cannot help (docs/protocol.md, Close codes).
const FATAL_CLOSES = new Set([4001, 4002, 4008, 4010]);
const TOKEN_EXPIRED = 4003;
// A `fetch` page: the most the server sends at once.
const FETCH_LIMIT = 500;

export class ChatError extends Error {
  constructor(code, message, ref = null) {
    super(message || code);
    this.code = code;
    this.ref = ref;
  }
}

// The messages of one consultation, in seq order, none twice.
export class Thread {
  constructor(consultation) {
    this.consultation = consultation;
    this.epoch = "";
    this.entries = [];
    this.bySeq = new Map();
  }

  get lastSeq() {
    return this.entries.length ? this.entries[this.entries.length - 1].seq : 0;
  }

  // Adds an entry; false when it is not the next one (already held, or after a gap).
  add(epoch, entry) {
    if (this.epoch && epoch !== this.epoch) return false;
    if (entry.seq !== this.lastSeq + 1) return false;
    this.epoch = epoch;
    this.entries.push(entry);
    this.bySeq.set(entry.seq, entry);
    return true;
  }

  clear(epoch) {
    this.epoch = epoch || "";
    this.entries = [];
    this.bySeq.clear();
  }
}

export class Connection extends EventTarget {
  // url: ws(s)://…/ws. getToken(): a promise of a valid token. renewToken(): a promise of a fresh
  // token for the same user, or null when the page cannot get one (staff sign in again).
  constructor({ url, getToken, renewToken = null, lang = "" }) {
    super();
    this.url = url;
    this.getToken = getToken;
    this.renewToken = renewToken;
    this.lang = lang;
    this.state = "connecting";
    this.welcome = null;
    this.threads = new Map();
    this._socket = null;
    this._pending = new Map(); // id → {frame, resolve, reject, timer, tries}
    this._nextId = 1;
    this._attempt = 0;
    this._retryTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._stopped = false;
    this._idPrefix = Math.random().toString(36).slice(2, 8);
  }

  start() {
    this._stopped = false;
    this._open();
    return this;
  }

  close() {
    this._stopped = true;
    clearTimeout(this._retryTimer);
    this._stopPing();
    if (this._socket) this._socket.close(1000, "bye");
    this._setState("closed");
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(new ChatError("closed", "the connection was closed"));
      this._pending.delete(id);
    }
  }

  get open() {
    return this.state === "open";
  }

  // A command with a reply: resolves with the reply frame, rejects with a ChatError. The timeout
  // runs only while a socket is open: a command made during a drop waits for the reconnection,
  // then gets the whole timeout to be answered.
  request(frame, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
    const id = frame.id || `${this._idPrefix}-${this._nextId++}`;
    return new Promise((resolve, reject) => {
      const pending = { frame: { ...frame, id }, resolve, reject, timer: null, tries: 0, timeoutMs };
      this._pending.set(id, pending);
      if (this.open) this._writePending(pending);
      // else: written by _flushPending once the next socket is open
    });
  }

  // A signal without a reply (typing, read, delivered): sent only while open, never queued.
  notify(frame) {
    if (this.open) this._write(frame);
  }

  thread(consultation) {
    let thread = this.threads.get(consultation);
    if (!thread) {
      thread = new Thread(consultation);
      this.threads.set(consultation, thread);
    }
    return thread;
  }

  // Reads the messages of a consultation up to `lastSeq` that the thread does not hold yet
  // (those stored before this connection followed it, or before the page was loaded).
  async catchUp(consultation, lastSeq = Infinity) {
    const thread = this.thread(consultation);
    while (thread.lastSeq < lastSeq) {
      const reply = await this.request({
        type: "fetch",
        consultation,
        after_seq: thread.lastSeq,
        epoch: thread.epoch || null,
        limit: FETCH_LIMIT,
      });
      if (reply.type === "reset") {
        this._reset(consultation, reply.epoch);
        continue;
      }
      for (const entry of reply.entries) this._addEntry(consultation, reply.epoch, entry, false);
      if (!reply.entries.length || thread.lastSeq >= reply.last_seq) break;
    }
    return thread;
  }

  // ---- socket life ----

  async _open() {
    clearTimeout(this._retryTimer);
    let token;
    try {
      token = await this.getToken();
    } catch (error) {
      this._scheduleReconnect();
      return;
    }
    if (this._stopped) return;
    const socket = new WebSocket(this.url, [PROTOCOL]);
    this._socket = socket;
    socket.addEventListener("open", () => {
      const resume = [];
      for (const thread of this.threads.values()) {
        if (thread.epoch) {
          resume.push({ consultation: thread.consultation, epoch: thread.epoch, seq: thread.lastSeq });
        }
      }
      this._write({ type: "hello", token, protocol: 1, lang: this.lang, resume: resume.slice(0, 64), id: "hello" });
    });
    socket.addEventListener("message", (event) => this._receive(socket, event.data));
    socket.addEventListener("close", (event) => this._closed(socket, event));
  }

  _closed(socket, event) {
    if (socket !== this._socket) return;
    this._socket = null;
    this._stopPing();
    this._pausePending();
    if (this._stopped) return;
    if (FATAL_CLOSES.has(event.code)) {
      this._failPending(new ChatError("closed", event.reason || "refused"));
      this._setState("failed", event.code, event.reason);
      return;
    }
    this._setState("reconnecting", event.code, event.reason);
    if (event.code === TOKEN_EXPIRED && this.renewToken) {
      // getToken() hands out the renewed token on the next attempt (the page keeps it).
      this.renewToken().catch(() => {}).finally(() => this._scheduleReconnect());
      return;
    }
    this._scheduleReconnect();
  }

  _scheduleReconnect() {
    if (this._stopped) return;
    const base = this._attempt === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (this._attempt - 1));
    const delay = base + Math.random() * Math.max(base / 2, BACKOFF_FIRST_MS);
    this._attempt += 1;
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _setState(state, code = null, reason = "") {
    if (this.state === state && code === null) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, code, reason } }));
  }

  _write(frame) {
    if (this._socket && this._socket.readyState === WebSocket.OPEN) {
      this._socket.send(JSON.stringify(frame));
    }
  }

  _receive(socket, data) {
    if (socket !== this._socket) return;
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case "welcome":
        this.welcome = frame;
        this._attempt = 0;
        this._setState("open");
        this._startPing();
        this._flushPending();
        break;
      case "message":
        this._addEntry(frame.consultation, frame.epoch, frame.entry, true);
        break;
      case "reset":
        if (!frame.ref) this._reset(frame.consultation, frame.epoch);
        break;
      case "token_expiring":
        this._renew();
        break;
      case "pong":
        clearTimeout(this._pongTimer);
        break;
      case "error":
        // After hello, `unavailable` without a ref: the desk could not load where we stand.
        // The protocol says reconnect; the next hello restores it all.
        if (frame.code === "unavailable" && !frame.ref && this._socket) {
          this._socket.close(4000, "state not loaded");
        }
        break;
      default:
        break;
    }
    if (frame.ref && this._settle(frame)) return;
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
  }

  _settle(frame) {
    const pending = this._pending.get(frame.ref);
    if (!pending) return false;
    if (frame.type === "error") {
      if (frame.code === "unavailable" && pending.tries < UNAVAILABLE_RETRIES) {
        pending.tries += 1;
        clearTimeout(pending.timer);
        setTimeout(() => this.open && this._pending.has(frame.ref) && this._writePending(pending), UNAVAILABLE_RETRY_MS);
        return true;
      }
      this._pending.delete(frame.ref);
      clearTimeout(pending.timer);
      pending.reject(new ChatError(frame.code, frame.message, frame.ref));
      return true;
    }
    this._pending.delete(frame.ref);
    clearTimeout(pending.timer);
    pending.resolve(frame);
    // The reply also goes to listeners: a `consultation` or `ended` reply is state too.
    this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
    return true;
  }

  _writePending(pending) {
    clearTimeout(pending.timer);
    pending.timer = setTimeout(() => {
      this._pending.delete(pending.frame.id);
      pending.reject(new ChatError("timeout", "no answer from the desk"));
    }, pending.timeoutMs);
    this._write(pending.frame);
  }

  _flushPending() {
    for (const pending of this._pending.values()) this._writePending(pending);
  }

  _pausePending() {
    for (const pending of this._pending.values()) clearTimeout(pending.timer);
  }

  _failPending(error) {
    for (const [id, pending] of this._pending) {
      clearTimeout(pending.timer);
      pending.reject(error);
      this._pending.delete(id);
    }
  }

  async _renew() {
    if (!this.renewToken) return;
    try {
      const token = await this.renewToken();
      if (token) await this.request({ type: "renew", token });
    } catch {
      // The socket closes with 4003 at expiry; the reconnect then uses a fresh token.
    }
  }

  _startPing() {
    this._stopPing();
    this._pingTimer = setInterval(() => {
      this._write({ type: "ping" });
      clearTimeout(this._pongTimer);
      this._pongTimer = setTimeout(() => {
        // Open but deaf: drop it and resume elsewhere.
        if (this._socket) this._socket.close(4000, "no pong");
      }, PONG_TIMEOUT_MS);
    }, PING_EVERY_MS);
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
  }

  // ---- threads ----

  _addEntry(consultation, epoch, entry, live) {
    const thread = this.thread(consultation);
    if (thread.add(epoch, entry)) {
      this.dispatchEvent(new CustomEvent("message", { detail: { consultation, entry, live } }));
    } else if (entry.seq > thread.lastSeq + 1 && (!thread.epoch || thread.epoch === epoch)) {
      // A gap (the server promises none; a page that followed late may see one): fill it.
      this.catchUp(consultation, entry.seq).catch(() => {});
    }
  }

  _reset(consultation, epoch) {
    this.thread(consultation).clear(epoch);
    this.dispatchEvent(new CustomEvent("reset", { detail: { consultation } }));
  }
}

// The gateway's WebSocket URL as seen from a page it served.
export function gatewaySocketUrl(location = window.location) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

// A client_msg_id: unique per message, kept with the message so a resend stores it once.
export function newMessageId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
