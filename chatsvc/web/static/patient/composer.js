// Writing to the doctor: the message box, the typing signal, and an outbox that never loses a
// message.
//
// Each message gets its client_msg_id once (newMessageId) and keeps it, with the frame id
// derived from it, through every retry: the desk stores it at most once however often it is sent
// (docs/protocol.md, "Frame ids and idempotency"). A message typed while the connection is down
// waits in the Connection's requests and goes out when it is back; one whose request timed out
// is sent again on the next "open".

import { $ } from "../common/dom.js";
import { newMessageId } from "../common/connection.js";

// The protocol passes one `typing` per 2 s on; sending more only costs frames.
const TYPING_EVERY_MS = 2000;
// Refusals after which resending cannot help.
const FINAL_REFUSALS = new Set(["closed", "forbidden", "message_too_long", "bad_frame"]);
// A send that timed out on an open socket is retried after this pause.
const RETRY_OPEN_MS = 3000;

export class Composer {
  constructor({ connection, chat }) {
    this.connection = connection;
    this.chat = chat;
    this.waiting = new Map(); // client_msg_id → send frame, not yet acknowledged
    this.toRetry = new Set(); // client_msg_ids whose last try got no answer
    this._lastTyping = 0;
    this._bind();
  }

  _bind() {
    const text = $("#composer-text");
    text.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter is a new line; never while an input method is composing
      // (Chinese and Japanese input confirm a candidate with Enter).
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    text.addEventListener("input", () => this._typing());
    $("#composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  submit() {
    const box = $("#composer-text");
    const text = box.value.trim();
    if (!text || !this.chat.active) return;
    const clientMsgId = newMessageId();
    const frame = {
      type: "send",
      consultation: this.chat.consultation,
      client_msg_id: clientMsgId,
      text,
      id: `send-${clientMsgId}`,
    };
    box.value = "";
    this.chat.addPending(clientMsgId, text);
    this.waiting.set(clientMsgId, frame);
    this._send(frame);
  }

  // The connection is open again: send what timed out meanwhile.
  resend() {
    for (const clientMsgId of [...this.toRetry]) {
      this.toRetry.delete(clientMsgId);
      const frame = this.waiting.get(clientMsgId);
      if (!frame) continue;
      this.chat.markRetrying(clientMsgId);
      this._send(frame);
    }
  }

  _send(frame) {
    this.connection
      .request(frame)
      .then(() => this.waiting.delete(frame.client_msg_id))
      .catch((error) => {
        // A refusal from the server carries the frame's ref; a ChatError without one is local
        // (a timeout, or the connection given up).
        if (error.ref && FINAL_REFUSALS.has(error.code)) {
          this.waiting.delete(frame.client_msg_id);
          this.chat.markFailed(frame.client_msg_id);
          return;
        }
        this.toRetry.add(frame.client_msg_id);
        if (this.connection.open) setTimeout(() => this.resend(), RETRY_OPEN_MS);
      });
  }

  _typing() {
    if (!this.chat.active || !$("#composer-text").value) return;
    const now = Date.now();
    if (now - this._lastTyping < TYPING_EVERY_MS) return;
    this._lastTyping = now;
    this.connection.notify({ type: "typing", consultation: this.chat.consultation });
  }
}
