// The chat of one consultation: the messages in seq order (the patient's on the left, the doctor's
// own on the right), each with its time and, for the doctor's own, sending / sent / delivered /
// read; the patient's typing indicator; and the composer.
//
// A message the doctor writes shows at once as "sending", then takes its place by seq when the
// desk stores it. It is matched by client_msg_id, because the `ack` and our own `message` frame
// may come in either order (docs/protocol.md, Message delivery). A send that failed keeps its
// client_msg_id for the retry, so the desk stores it once however often it is retried.

import { newMessageId } from "../common/connection.js";
import { el } from "../common/dom.js";
import { formatTime, t } from "../common/i18n.js";

// The patient's client sends `typing` at most every 2 s while typing: a little longer than that
// without one means they stopped.
const TYPING_SHOW_MS = 4000;
// We send `typing` at most this often (the desk passes on one per 2 s and drops the rest).
const TYPING_EVERY_MS = 2000;
// Within this many pixels of the bottom, a new message scrolls the log down; further up the
// doctor is reading back and the log stays put.
const STICK_TO_BOTTOM_PX = 80;

export class Chat {
  // me: this doctor's user id; onTyping(): we are typing (the caller sends the signal).
  constructor({ connection, consultation, me, label }) {
    this.connection = connection;
    this.consultation = consultation;
    this.me = me;
    this.own = new Map(); // client_msg_id → {item, mark, seq}
    this.readSeq = 0; // the patient's marks
    this.deliveredSeq = 0;
    this.lastTypingSent = 0;
    this.typingTimer = null;

    this.log = el("ol", { class: "messages", attrs: { "aria-label": t("chat.label", { patient: label }), tabindex: "0" } });
    this.typing = el("p", { class: "typing muted", text: t("chat.typing"), attrs: { hidden: true } });
    this.input = el("textarea", { attrs: { rows: 2, maxlength: 4000, placeholder: t("chat.placeholder") } });
    this.input.id = `composer-${consultation}`;
    const hint = el("p", { class: "composer-hint muted", text: t("chat.keys"), attrs: { id: `${this.input.id}-keys` } });
    this.input.setAttribute("aria-describedby", hint.id);
    this.sendButton = el("button", { text: t("chat.send"), attrs: { type: "submit" } });
    this.form = el(
      "form",
      { class: "composer", on: { submit: (event) => (event.preventDefault(), this.submit()) } },
      el("label", { class: "visually-hidden", text: t("chat.messageLabel"), attrs: { for: this.input.id } }),
      this.input,
      this.sendButton,
      hint,
    );
    this.input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter is a new line; never while an input method is composing (pinyin).
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.typed());
    this.element = el("section", { class: "chat", attrs: { "aria-label": t("chat.region") } }, this.log, this.typing, this.form);
  }

  typed() {
    const now = Date.now();
    if (!this.input.value || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    this.lastTypingSent = now;
    this.connection.notify({ type: "typing", consultation: this.consultation });
  }

  submit() {
    const text = this.input.value.trim();
    if (!text) return;
    this.input.value = "";
    const id = newMessageId();
    const mark = el("span", { class: "mark" });
    const item = this.item({ role: "doctor", kind: "text", sender: this.me, text, ts: Date.now() }, mark);
    item.classList.add("pending");
    this.own.set(id, { item, mark, seq: null });
    this.log.append(item);
    this.scrollDown(true);
    this.deliver(id, text);
  }

  async deliver(id, text) {
    const own = this.own.get(id);
    this.setMark(own, "sending");
    try {
      const ack = await this.connection.request({ type: "send", consultation: this.consultation, client_msg_id: id, text });
      if (own.seq === null) own.seq = ack.seq;
      own.item.dataset.seq = String(ack.seq);
      this.refreshMark(own);
    } catch (error) {
      this.setMark(own, "failed");
      const retry = el("button", {
        class: "secondary small",
        text: t("chat.retry"),
        attrs: { type: "button" },
        on: { click: () => (retry.remove(), this.deliver(id, text)) },
      });
      own.mark.append(" ", retry);
    }
  }

  // A stored message, in seq order (the connection's thread guarantees order and no repeat).
  add(entry) {
    const mine = entry.sender === this.me && this.own.get(entry.client_msg_id);
    let item;
    if (mine) {
      item = mine.item;
      item.remove();
      item.classList.remove("pending");
      mine.seq = entry.seq;
      item.querySelector("time").textContent = formatTime(entry.ts);
      this.refreshMark(mine);
    } else {
      const mark = entry.sender === this.me ? el("span", { class: "mark" }) : null;
      item = this.item(entry, mark);
      if (mark) {
        // Ours from another tab of this doctor: marks follow it too.
        this.own.set(entry.client_msg_id, { item, mark, seq: entry.seq });
        this.refreshMark(this.own.get(entry.client_msg_id));
      }
    }
    item.dataset.seq = String(entry.seq);
    const stick = this.nearBottom();
    this.log.insertBefore(item, this.log.querySelector("li.pending"));
    if (entry.role === "patient") this.showTyping(false);
    this.scrollDown(stick);
  }

  // The thread was renumbered: its messages come again from 1. Unsent ones stay.
  clear() {
    for (const item of [...this.log.children]) if (!item.classList.contains("pending")) item.remove();
    for (const [id, own] of this.own) if (own.seq !== null) this.own.delete(id);
  }

  item(entry, mark) {
    let side = "from-patient";
    let who = t("chat.patient");
    if (entry.role === "system" || entry.kind !== "text") {
      side = "from-system";
      who = t("chat.system");
    } else if (entry.sender === this.me) {
      side = "from-me";
      who = t("chat.you");
    } else if (entry.role !== "patient") {
      side = "from-colleague";
      who = t(entry.role === "supervisor" ? "chat.supervisor" : "chat.colleague");
    }
    return el(
      "li",
      { class: `msg ${side}` },
      el("span", { class: side === "from-patient" || side === "from-me" ? "visually-hidden" : "who", text: `${who}: ` }),
      el("div", { class: "bubble", text: entry.text }),
      el("p", { class: "meta" }, el("time", { text: formatTime(entry.ts) }), mark ? " " : null, mark),
    );
  }

  // The patient's delivered / read marks (a read mark implies delivered).
  setMarks({ read, delivered }) {
    if (read !== undefined) this.readSeq = Math.max(this.readSeq, read);
    if (delivered !== undefined) this.deliveredSeq = Math.max(this.deliveredSeq, delivered);
    this.deliveredSeq = Math.max(this.deliveredSeq, this.readSeq);
    for (const own of this.own.values()) this.refreshMark(own);
  }

  refreshMark(own) {
    if (own.seq === null) return;
    if (own.seq <= this.readSeq) this.setMark(own, "read");
    else if (own.seq <= this.deliveredSeq) this.setMark(own, "delivered");
    else this.setMark(own, "sent");
  }

  setMark(own, state) {
    own.mark.textContent = t(`chat.${state}`);
    own.mark.dataset.state = state;
  }

  showTyping(on) {
    clearTimeout(this.typingTimer);
    this.typing.hidden = !on;
    if (on) this.typingTimer = setTimeout(() => (this.typing.hidden = true), TYPING_SHOW_MS);
  }

  setEnded() {
    this.form.hidden = true;
    this.showTyping(false);
  }

  nearBottom() {
    return this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < STICK_TO_BOTTOM_PX;
  }

  scrollDown(stick) {
    if (stick) this.log.scrollTop = this.log.scrollHeight;
  }
}
