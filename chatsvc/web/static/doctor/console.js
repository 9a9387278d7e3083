// The console's conductor: one Connection to the desk, and every server frame handed to the part
// of the page it concerns (header, queue panel, offers, consultation tabs). It holds no state of
// the desk it could get wrong: what it shows comes from the desk's frames, each taken as "this is
// now so" (a frame may repeat: docs/protocol.md, Message delivery).

import { Connection, gatewaySocketUrl } from "../common/connection.js";
import { $ } from "../common/dom.js";
import { language, t } from "../common/i18n.js";
import { ConsultationView, delivered } from "./consultation.js";
import { Header } from "./header.js";
import { departmentName, patientLabel } from "./intake.js";
import { Notes } from "./notes.js";
import { OfferList } from "./offers.js";
import { QueuePanel } from "./queues.js";
import { showSignIn, signOut, TOKEN_KEY } from "./signin.js";
import { Tabs } from "./tabs.js";

// Countdowns and waiting times move once a second.
const TICK_MS = 1000;
// Close codes that mean the token itself was refused (docs/protocol.md, Close codes).
const REFUSED = new Set([4001, 4003]);

export class DoctorConsole {
  constructor(token) {
    this.departments = []; // the welcome's, filled in place so every part sees the same list
    this.views = new Map(); // consultation id → ConsultationView
    this.restored = null; // ids a restore named since the last welcome, until it is over
    this.connection = new Connection({
      url: gatewaySocketUrl(),
      getToken: async () => token,
      renewToken: async () => null, // staff sign in again with a new link
      lang: language(),
    });
    this.header = new Header(this.connection);
    this.notes = new Notes($("#notes"), $("#announcer"));
    this.queues = new QueuePanel(this.connection, (view) => this.open(view, true));
    this.offers = new OfferList(this.connection, this.departments, (view) => this.open(view, true));
    this.tabs = new Tabs((id) => this.onSelected(id));
  }

  start() {
    const connection = this.connection;
    connection.addEventListener("state", (event) => this.onState(event.detail));
    connection.addEventListener("frame", (event) => this.onFrame(event.detail));
    connection.addEventListener("message", (event) => this.onMessage(event.detail));
    connection.addEventListener("reset", (event) => this.views.get(event.detail.consultation)?.reset());
    document.addEventListener("visibilitychange", () => this.tabs.selected && this.onSelected(this.tabs.selected));
    $("#signout").addEventListener("click", () => {
      connection.close();
      signOut();
    });
    setInterval(() => {
      this.queues.render();
      this.offers.tick();
    }, TICK_MS);
    this.header.onConnection("connecting");
    connection.start();
  }

  onState({ state, code }) {
    if (state === "failed" && REFUSED.has(code)) {
      this.connection.close();
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn("signin.refused");
      return;
    }
    this.header.onConnection(state, code);
  }

  onFrame(frame) {
    const view = frame.consultation && typeof frame.consultation === "string" ? this.views.get(frame.consultation) : null;
    switch (frame.type) {
      case "welcome":
        this.onWelcome(frame);
        break;
      case "status":
        this.header.onStatus(frame);
        break;
      case "queue_summary":
        this.queues.onSummary(frame);
        break;
      case "offer":
        this.restored?.add(frame.consultation.id);
        if (!this.views.has(frame.consultation.id) && this.offers.onOffer(frame)) {
          const view = frame.consultation;
          this.notes.announce(t("offers.announce", { patient: patientLabel(view.patient), urgency: t(`urgency.${view.urgency}`) }));
        }
        break;
      case "consultation":
        this.open(frame.consultation, false);
        break;
      case "released":
        this.onReleased(frame);
        break;
      case "ended":
        view?.markEnded(frame.outcome, frame.summary);
        break;
      case "typing":
        if (frame.role === "patient") view?.chat.showTyping(true);
        break;
      case "read":
        if (frame.role === "patient") view?.chat.setMarks({ read: frame.seq });
        break;
      case "delivered":
        if (frame.role === "patient") view?.chat.setMarks({ delivered: frame.seq });
        break;
      case "presence":
        if (frame.role === "patient") view?.onPresence(frame.status);
        break;
      case "error":
        if (!frame.ref) this.onStrayError(frame);
        break;
      case "token_expiring":
        // Staff tokens are not renewed from the page: say so while there is a minute left.
        this.notes.add(t("signin.expiring"), "warn");
        break;
      default:
        break;
    }
  }

  onWelcome(welcome) {
    if (welcome.role !== "doctor") {
      this.connection.close();
      sessionStorage.removeItem(TOKEN_KEY);
      showSignIn("signin.notDoctor");
      return;
    }
    this.me = welcome.user_id;
    this.departments.splice(0, this.departments.length, ...welcome.departments);
    this.header.setName(welcome.name);
    this.queues.setDepartments(this.departments);
    document.getElementById("app").removeAttribute("aria-busy");
    // The restore (consultation, offer frames) comes before the answer to a ping sent now: once
    // it is in, a tab or offer it did not name left this doctor while the page was away.
    const restored = new Set();
    this.restored = restored;
    this.connection
      .request({ type: "ping" })
      .then(() => this.restoreDone(restored))
      .catch(() => {});
  }

  restoreDone(restored) {
    if (this.restored !== restored) return; // a later welcome took over
    this.restored = null;
    for (const id of this.offers.ids()) if (!restored.has(id)) this.offers.remove(id);
    for (const [id, view] of this.views) {
      if (!view.ended && !restored.has(id)) this.close(id, t("notes.lost", { patient: view.label }), "warn");
    }
  }

  // A consultation of this doctor: a new tab, or the tab refreshed. `select`: the doctor asked
  // for it (take next, accept), so it is shown and focused.
  open(consultation, select) {
    this.restored?.add(consultation.id);
    this.offers.remove(consultation.id);
    let view = this.views.get(consultation.id);
    if (view) {
      view.refresh(consultation);
    } else {
      view = new ConsultationView({
        connection: this.connection,
        view: consultation,
        me: this.me,
        departments: this.departments,
        onEnded: (id) => this.onEnded(id),
        onClose: (id) => this.close(id),
      });
      this.views.set(consultation.id, view);
      this.tabs.add(consultation.id, view.panel, {
        label: view.label,
        department: departmentName(this.departments, consultation.department),
        urgency: consultation.urgency,
        unread: 0,
        ended: view.ended,
      });
      for (const entry of this.connection.thread(consultation.id).entries) view.addEntry(entry);
      this.connection.catchUp(consultation.id, consultation.last_seq).catch(() => {});
    }
    this.refreshTab(consultation.id);
    if (select) {
      this.tabs.choose(consultation.id, false);
      view.focus();
    }
    this.countActive();
  }

  onMessage({ consultation, entry, live }) {
    const view = this.views.get(consultation);
    if (!view) return; // kept in the thread; shown when its tab opens
    view.addEntry(entry);
    if (entry.role !== "patient") return;
    if (this.isOnScreen(consultation)) view.seen();
    this.refreshTab(consultation);
    if (live) this.notes.announce(t("chat.announce", { patient: view.label, text: entry.text }));
  }

  onSelected(id) {
    if (this.isOnScreen(id)) this.views.get(id)?.seen();
    this.refreshTab(id);
  }

  isOnScreen(id) {
    return this.tabs.selected === id && document.visibilityState === "visible";
  }

  refreshTab(id) {
    const view = this.views.get(id);
    if (view) this.tabs.update(id, { unread: view.unread, ended: view.ended });
    // The browser tab's title counts every unread message, for a doctor working in another window.
    let unread = 0;
    for (const each of this.views.values()) unread += each.unread;
    document.title = unread ? `(${unread}) ${t("app.pageTitle")}` : t("app.pageTitle");
  }

  onReleased(frame) {
    const id = frame.consultation;
    if (this.offers.remove(id) && frame.reason === "offer_expired") this.notes.add(t("offers.expired"), "warn");
    const view = this.views.get(id);
    if (!view) return;
    if (frame.reason === "transferred") {
      const to = view.transferTo ? this.departments.find((d) => d.id === view.transferTo)?.name : null;
      this.close(id, to ? t("notes.transferred", { patient: view.label, department: to }) : t("notes.transferredAway", { patient: view.label }));
    } else if (frame.reason === "requeued") {
      this.close(id, t("notes.requeued", { patient: view.label }), "warn");
    } else {
      this.close(id, t("notes.released", { patient: view.label }), "warn");
    }
  }

  onEnded(id) {
    this.refreshTab(id);
    this.countActive();
  }

  // Removes a tab (closed by the doctor, or the consultation left them), with a note saying why.
  close(id, note = null, kind = "info") {
    const view = this.views.get(id);
    if (!view) return;
    const hadFocus = view.panel.contains(document.activeElement);
    this.tabs.remove(id);
    this.views.delete(id);
    this.connection.threads.delete(id); // not followed any more: no resume point for it
    if (note) this.notes.add(note, kind);
    this.countActive();
    this.refreshTab(id); // the title's unread count
    if (hadFocus) {
      const next = this.tabs.selected && this.views.get(this.tabs.selected);
      if (next) next.focus();
      else $("#take-next").focus();
    }
  }

  countActive() {
    this.header.setActive([...this.views.values()].filter((view) => !view.ended).length);
  }

  onStrayError(frame) {
    // An older desk does not know `delivered` yet: stop sending it, quietly.
    if (frame.code === "bad_frame" && /deliver/i.test(frame.message)) delivered.supported = false;
  }
}
