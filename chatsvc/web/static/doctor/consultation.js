// One consultation as the doctor works on it: a header (patient, department, urgency, the
// patient's presence), what the patient stated (red flags first, then the intake), their earlier
// consultations, the chat, and the two ways out: end with a summary, or transfer to a department.
//
// It also keeps the doctor's side of the marks: `delivered` for the patient's messages as they
// arrive, `read` once they were on screen (the console says when: the tab shown, the page
// visible), and the unread count of the tab (the patient's messages after the doctor's read mark).

import { el } from "../common/dom.js";
import { language, t } from "../common/i18n.js";
import { Chat } from "./chat.js";
import { departmentName, intakeList, patientLabel, redFlagList, urgencyBadge } from "./intake.js";

// Until the desk knows the `delivered` frame (a newer protocol addition), it answers it with
// bad_frame: the console then turns it off for the page, and read marks alone are sent.
export const delivered = { supported: true };

export class ConsultationView {
  constructor({ connection, view, me, departments, onEnded, onClose }) {
    this.connection = connection;
    this.id = view.id;
    this.view = view;
    this.me = me;
    this.departments = departments;
    this.onEnded = onEnded;
    this.onClose = onClose;
    this.ended = false;
    this.label = patientLabel(view.patient);
    this.patientSeqs = []; // seqs of the patient's messages shown
    this.doctorRead = (view.read && view.read.doctor) || 0; // our own read mark
    this.deliveredSent = (view.delivered && view.delivered.doctor) || 0;
    this.deliverTimer = null;

    this.chat = new Chat({ connection, consultation: view.id, me, label: this.label });
    this.chat.setMarks({ read: (view.read || {}).patient || 0, delivered: (view.delivered || {}).patient || 0 });
    this.panel = this.build();
    if (view.state === "ended") this.markEnded(view.outcome, view.summary);
    else this.loadHistory();
  }

  // ---- building ----

  build() {
    const view = this.view;
    this.heading = el("h2", { text: this.label, attrs: { tabindex: "-1" } });
    this.presence = el("p", { class: "presence", attrs: { role: "status" } });
    const head = el(
      "header",
      { class: "case-head" },
      this.heading,
      urgencyBadge(view.urgency),
      el("span", { class: "muted", text: departmentName(this.departments, view.department) }),
      this.presence,
    );
    const flags = redFlagList(view.red_flags);
    this.historyList = el("ol", { class: "history-list" });
    this.historyNote = el("p", { class: "muted", text: t("history.loading") });
    this.endForm = this.buildEnd();
    this.transferForm = this.buildTransfer();
    this.endedBox = el("div", { class: "ended-box", attrs: { hidden: true } });
    const body = el(
      "div",
      { class: "case-body" },
      flags
        ? el("section", { class: `case-flags urgency-edge-${view.urgency}`, attrs: { "aria-label": t("case.redFlags") } }, el("h3", { text: t("case.redFlags") }), flags)
        : null,
      el("section", { class: "case-intake" }, el("h3", { text: t("case.intake") }), intakeList(view.intake)),
      el("div", { class: "case-chat" }, this.chat.element, this.endedBox),
      el("section", { class: "case-history" }, el("h3", { text: t("history.title") }), this.historyNote, this.historyList),
      el("div", { class: "case-actions" }, this.endForm, this.transferForm),
    );
    return el("section", { class: "case", attrs: { "data-consultation": view.id } }, head, body);
  }

  buildEnd() {
    const id = `summary-${this.id}`;
    const summary = el("textarea", { attrs: { id, rows: 3, required: true, maxlength: 4000 } });
    const note = el("p", { class: "inline-note", attrs: { role: "status" } });
    const button = el("button", { class: "danger", text: t("end.submit"), attrs: { type: "submit" } });
    const form = el(
      "form",
      { class: "end-form" },
      el("h3", { text: t("end.title") }),
      el("label", { text: t("end.summaryLabel"), attrs: { for: id } }),
      summary,
      button,
      note,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = summary.value.trim();
      if (!text) {
        note.textContent = t("end.required");
        summary.focus();
        return;
      }
      button.disabled = true;
      note.textContent = "";
      try {
        const reply = await this.connection.request({ type: "end", consultation: this.id, summary: text });
        this.markEnded(reply.outcome, reply.summary);
      } catch (error) {
        if (error.code === "already_ended") this.markEnded(null, "");
        else note.textContent = t("end.failed", { reason: error.message });
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  buildTransfer() {
    const id = `transfer-${this.id}`;
    const others = this.departments.filter((department) => department.id !== this.view.department);
    const select = el("select", { attrs: { id } }, ...others.map((department) => el("option", { text: department.name, attrs: { value: department.id } })));
    const note = el("p", { class: "inline-note", attrs: { role: "status" } });
    const button = el("button", { class: "secondary", text: t("transfer.submit"), attrs: { type: "submit" } });
    const form = el(
      "form",
      { class: "transfer-form" },
      el("h3", { text: t("transfer.title") }),
      el("label", { text: t("transfer.label"), attrs: { for: id } }),
      el("div", { class: "row" }, select, button),
      note,
    );
    form.hidden = others.length === 0;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      button.disabled = true;
      note.textContent = "";
      this.transferTo = select.value;
      try {
        // The reply, `released`, closes the tab through the console.
        await this.connection.request({ type: "transfer", consultation: this.id, department: select.value });
      } catch (error) {
        note.textContent = t("transfer.failed", { reason: error.message });
        button.disabled = false;
      }
    });
    return form;
  }

  async loadHistory() {
    try {
      const reply = await this.connection.request({ type: "patient_history", consultation: this.id });
      const items = reply.items.filter((item) => item.id !== this.id);
      this.historyNote.textContent = items.length ? "" : t("history.none");
      this.historyNote.hidden = items.length > 0;
      this.historyList.replaceChildren(...items.map((item) => this.historyItem(item)));
    } catch (error) {
      this.historyNote.textContent = t("history.failed");
    }
  }

  historyItem(item) {
    const when = item.ended_ms || item.started_ms;
    const date = when ? new Date(when).toLocaleDateString(language(), { year: "numeric", month: "short", day: "numeric" }) : "";
    const by = [departmentName(this.departments, item.department), item.doctor_name].filter(Boolean).join(" · ");
    return el(
      "li",
      { class: "history-item" },
      el("p", { class: "history-head" }, el("strong", { text: date }), " ", el("span", { class: "muted", text: by })),
      item.outcome === "patient_left" ? el("p", { class: "muted", text: t("history.patientLeft") }) : null,
      el("p", { class: "bubble", text: item.summary || t("history.noSummary") }),
    );
  }

  // ---- what the desk tells us ----

  // A `consultation` frame again (a reply, a restore): the state is now so.
  refresh(view) {
    this.view = { ...this.view, ...view };
    this.chat.setMarks({ read: (view.read || {}).patient, delivered: (view.delivered || {}).patient });
    if (view.state === "ended" && !this.ended) this.markEnded(view.outcome, view.summary);
  }

  addEntry(entry) {
    this.chat.add(entry);
    if (entry.role !== "patient") return;
    this.patientSeqs.push(entry.seq);
    this.queueDelivered(entry.seq);
  }

  reset() {
    this.chat.clear();
    this.patientSeqs = [];
  }

  get unread() {
    return this.patientSeqs.filter((seq) => seq > this.doctorRead).length;
  }

  // The panel is on screen: everything in it counts as read.
  seen() {
    const last = this.chat.connection.thread(this.id).lastSeq;
    if (this.ended || last <= this.doctorRead) {
      this.doctorRead = Math.max(this.doctorRead, last);
      return;
    }
    this.doctorRead = last;
    this.connection.notify({ type: "read", consultation: this.id, seq: last });
  }

  // `delivered` for the patient's messages as they arrive; a burst (history) is one frame.
  queueDelivered(seq) {
    if (!delivered.supported || this.ended || seq <= this.deliveredSent) return;
    this.deliveredSent = seq;
    clearTimeout(this.deliverTimer);
    this.deliverTimer = setTimeout(() => {
      // A read mark sent meanwhile (the tab is on screen) already says delivered.
      if (delivered.supported && this.deliveredSent > this.doctorRead) {
        this.connection.notify({ type: "delivered", consultation: this.id, seq: this.deliveredSent });
      }
    }, 0);
  }

  onPresence(status) {
    this.presence.textContent = status === "reconnecting" ? t("presence.reconnecting") : t("presence.back");
    this.presence.className = status === "reconnecting" ? "presence banner warn" : "presence banner info";
  }

  markEnded(outcome, summary) {
    if (this.ended) return;
    this.ended = true;
    this.chat.setEnded();
    this.endForm.hidden = true;
    this.transferForm.hidden = true;
    this.presence.textContent = "";
    this.presence.className = "presence";
    const title = el("h3", { text: t("ended.title"), attrs: { tabindex: "-1" } });
    const close = el("button", { class: "secondary", text: t("ended.close"), attrs: { type: "button" }, on: { click: () => this.onClose(this.id) } });
    const parts = [title];
    if (outcome === "patient_left") parts.push(el("p", { text: t("ended.patientLeft") }));
    if (summary) parts.push(el("p", { class: "muted", text: t("ended.summary") }), el("p", { class: "bubble summary", text: summary }));
    parts.push(close);
    this.endedBox.replaceChildren(...parts);
    this.endedBox.hidden = false;
    // Focus follows only when it was in this panel (the doctor ended it here), never stolen.
    if (this.panel.contains(document.activeElement)) title.focus();
    this.onEnded(this.id);
  }

  focus() {
    this.heading.focus();
  }
}
