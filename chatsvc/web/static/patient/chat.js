// The conversation with the doctor: the messages, their marks, and the doctor's signals.
//
// The Connection owns the messages (a Thread per consultation, in seq order, none twice); this
// view only draws them. A message the patient sends shows at once as "sending" (keyed by its
// client_msg_id), becomes "sent" on `ack` or when it comes back as a stored message, then
// "delivered" and "read" from the doctor's marks. Text is only ever set as text (el(..., {text})).
//
// Marks the patient gives: `delivered` for every doctor message that reached the page, `read`
// once the page is visible and focused (a message in a background tab has not been read).

import { $, el, show } from "../common/dom.js";
import { formatTime, t } from "../common/i18n.js";
import { showScreen } from "./screens.js";

// How long "Doctor is typing…" shows after the last `typing` frame: the doctor's client sends
// one at most every 2 s while typing, so 3 s bridges one gap without lingering after they stop.
const TYPING_SHOWN_MS = 3000;
// A "back" notice is good news: shown briefly, then out of the way.
const BACK_SHOWN_MS = 5000;
// Auto-scroll only when the reader is already near the bottom (not reading back in history).
const NEAR_BOTTOM_PX = 80;
const STATUS_ORDER = ["failed", "sending", "sent", "delivered", "read"];

export class ChatView {
  constructor({ connection }) {
    this.connection = connection;
    this.consultation = null;
    this.doctorName = "";
    this.marks = { delivered: 0, read: 0 }; // the doctor's marks: highest seq received / read
    this.readSent = 0;
    this.deliveredSent = 0;
    this.deliveredSupported = true;
    this.log = $("#chat-log");
    this._typingTimer = null;
    this._presenceTimer = null;
    window.addEventListener("focus", () => this._markRead());
    document.addEventListener("visibilitychange", () => this._markRead());
  }

  get active() {
    return this.consultation !== null;
  }

  // `assigned` (live, or in the restore after a reload or reconnect).
  async open(assigned) {
    const same = assigned.consultation === this.consultation;
    this.doctorName = assigned.doctor_name || t("chat.yourDoctor");
    $("#chat-heading").textContent = this.doctorName;
    if (!same) {
      this.consultation = assigned.consultation;
      this.marks = { delivered: 0, read: 0 };
      this.readSent = 0;
      this.deliveredSent = 0;
      this.log.replaceChildren();
      show($("#chat-presence"), false);
      // Messages the thread already holds (a restore that pushed them before this view opened).
      for (const entry of this.connection.thread(assigned.consultation).entries) this._render(entry);
    }
    $("#composer-text").disabled = false;
    $("#composer-send").disabled = false;
    showScreen("chat");
    try {
      // History before this connection followed the consultation, then the marks so far.
      await this.connection.catchUp(assigned.consultation, assigned.last_seq);
      const reply = await this.connection.request({ type: "open", consultation: assigned.consultation });
      this._applyView(reply.consultation);
    } catch {
      // The live messages keep coming; a later reconnect resumes what a failed fetch missed.
    }
    this._markDelivered();
    this._markRead();
  }

  close() {
    this.consultation = null;
    clearTimeout(this._typingTimer);
    show($("#chat-typing"), false);
  }

  // A new message in a thread (Connection's "message" event).
  onMessage({ consultation, entry }) {
    if (consultation !== this.consultation) return;
    this._render(entry);
    if (entry.role === "doctor") {
      this._stopTyping();
      this._markDelivered();
      this._markRead();
    }
  }

  onReset({ consultation }) {
    if (consultation !== this.consultation) return;
    // The server sends every message again from the first: drop the stored ones we drew, keep
    // the ones still being sent (their ack or echo will place them).
    for (const item of [...this.log.querySelectorAll("li[data-seq]")]) item.remove();
    this.readSent = 0;
    this.deliveredSent = 0;
  }

  onFrame(frame) {
    if (frame.consultation !== this.consultation) return;
    switch (frame.type) {
      case "ack":
        this._acked(frame);
        break;
      case "typing":
        if (frame.role === "doctor") this._showTyping();
        break;
      case "read":
      case "delivered":
        if (frame.role === "doctor") this._raiseMark(frame.type, frame.seq);
        break;
      case "presence":
        if (frame.role === "doctor") this._presence(frame.status);
        break;
      default:
        break;
    }
  }

  // The connection is open again: give the marks a dropped socket may have swallowed (notify
  // sends nothing while the socket is down).
  resync() {
    this._markDelivered();
    this._markRead();
  }

  // The server did not know `delivered` (a desk older than the mark): stop sending it.
  deliveredRefused() {
    this.deliveredSupported = false;
  }

  // A message typed here: drawn at once, before the desk has it.
  addPending(clientMsgId, text) {
    const item = this._item({ role: "patient", text, ts: Date.now(), client_msg_id: clientMsgId });
    item.dataset.cmid = clientMsgId;
    this._setStatus(item, "sending");
    this.log.append(item);
    this._scroll(true);
  }

  markFailed(clientMsgId) {
    const item = this.log.querySelector(`li[data-cmid="${CSS.escape(clientMsgId)}"]`);
    if (item && !item.dataset.seq) this._setStatus(item, "failed");
  }

  markRetrying(clientMsgId) {
    const item = this.log.querySelector(`li[data-cmid="${CSS.escape(clientMsgId)}"]`);
    if (item && !item.dataset.seq) this._setStatus(item, "sending");
  }

  // ---- drawing ----

  _item(entry) {
    const mine = entry.role === "patient";
    const system = entry.role !== "patient" && entry.role !== "doctor";
    const who = mine ? t("chat.you") : system ? t("chat.system") : this.doctorName;
    const item = el(
      "li",
      { class: `msg ${mine ? "mine" : system ? "system" : "theirs"}` },
      el("span", { class: "visually-hidden", text: `${who}: ` }),
      el("div", { class: "bubble", text: entry.text }),
      el(
        "div",
        { class: "meta" },
        el("time", { text: formatTime(entry.ts), attrs: { datetime: new Date(entry.ts).toISOString() } }),
        mine ? el("span", { class: "status" }) : null,
      ),
    );
    return item;
  }

  _render(entry) {
    if (this.log.querySelector(`li[data-seq="${entry.seq}"]`)) return;
    let item = null;
    if (entry.role === "patient") {
      item = this.log.querySelector(`li[data-cmid="${CSS.escape(entry.client_msg_id)}"]`);
    }
    if (item) {
      const time = item.querySelector("time");
      time.textContent = formatTime(entry.ts);
      time.setAttribute("datetime", new Date(entry.ts).toISOString());
    } else {
      item = this._item(entry);
      if (entry.role === "patient") item.dataset.cmid = entry.client_msg_id;
    }
    // Stored messages in seq order, then those still being sent. A message of ours that was
    // the first still being sent is already in its place: moving it would make the live region
    // announce it again.
    const firstPending = this.log.querySelector("li[data-cmid]:not([data-seq])");
    if (item !== firstPending) this.log.insertBefore(item, firstPending);
    item.dataset.seq = String(entry.seq);
    if (entry.role === "patient") this._setStatus(item, this._statusOf(entry.seq));
    this._scroll(entry.role === "patient");
  }

  _acked(ack) {
    const item = this.log.querySelector(`li[data-cmid="${CSS.escape(ack.client_msg_id)}"]`);
    if (!item) return;
    if (!item.dataset.seq) {
      item.dataset.ackSeq = String(ack.seq);
    }
    this._setStatus(item, this._statusOf(ack.seq));
  }

  _statusOf(seq) {
    if (this.marks.read >= seq) return "read";
    if (this.marks.delivered >= seq) return "delivered";
    return "sent";
  }

  _setStatus(item, status) {
    const old = item.dataset.status;
    // Marks only rise: a late `ack` must not turn "read" back into "sent".
    if (old && old !== "failed" && STATUS_ORDER.indexOf(status) < STATUS_ORDER.indexOf(old) && status !== "failed") return;
    item.dataset.status = status;
    const label = item.querySelector(".status");
    if (label) label.textContent = t(`status.${status}`);
  }

  _raiseMark(kind, seq) {
    if (seq <= this.marks[kind]) return;
    this.marks[kind] = seq;
    if (kind === "read" && seq > this.marks.delivered) this.marks.delivered = seq; // read implies delivered
    for (const item of this.log.querySelectorAll("li.mine")) {
      const itemSeq = Number(item.dataset.seq || item.dataset.ackSeq || 0);
      if (itemSeq) this._setStatus(item, this._statusOf(itemSeq));
    }
  }

  _applyView(view) {
    if (!view || view.id !== this.consultation) return;
    if (view.doctor_name) {
      this.doctorName = view.doctor_name;
      $("#chat-heading").textContent = view.doctor_name;
    }
    const read = (view.read || {}).doctor || 0;
    const delivered = (view.delivered || {}).doctor || 0;
    this._raiseMark("delivered", Math.max(read, delivered));
    this._raiseMark("read", read);
  }

  _scroll(force) {
    const log = this.log;
    const near = log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_BOTTOM_PX;
    if (force || near) log.scrollTop = log.scrollHeight;
  }

  // ---- the doctor's signals ----

  _showTyping() {
    const line = $("#chat-typing");
    line.textContent = t("chat.typing", { name: this.doctorName });
    show(line, true);
    clearTimeout(this._typingTimer);
    this._typingTimer = setTimeout(() => this._stopTyping(), TYPING_SHOWN_MS);
  }

  _stopTyping() {
    clearTimeout(this._typingTimer);
    show($("#chat-typing"), false);
  }

  _presence(status) {
    const banner = $("#chat-presence");
    clearTimeout(this._presenceTimer);
    banner.textContent = t(status === "back" ? "chat.doctorBack" : "chat.doctorReconnecting", { name: this.doctorName });
    show(banner, true);
    if (status === "back") this._presenceTimer = setTimeout(() => show(banner, false), BACK_SHOWN_MS);
  }

  // ---- marks we give ----

  _lastDoctorSeq() {
    const entries = this.connection.thread(this.consultation).entries;
    for (let i = entries.length - 1; i >= 0; i -= 1) if (entries[i].role !== "patient") return entries[i].seq;
    return 0;
  }

  _markDelivered() {
    if (!this.active || !this.deliveredSupported || !this.connection.open) return;
    const seq = this._lastDoctorSeq();
    if (seq > this.deliveredSent) {
      this.deliveredSent = seq;
      this.connection.notify({ type: "delivered", consultation: this.consultation, seq });
    }
  }

  _markRead() {
    if (!this.active || !this.connection.open) return;
    if (document.visibilityState !== "visible" || !document.hasFocus()) return;
    const seq = this._lastDoctorSeq();
    if (seq > this.readSent) {
      this.readSent = seq;
      this.connection.notify({ type: "read", consultation: this.consultation, seq });
    }
  }
}
