// Offers (push routing, or a colleague's transfer to this doctor): a patient reserved for this
// doctor until a deadline. Each shows as a card with the intake, the red flags, a countdown and an
// Accept button. An offer left to run out goes back to the queue (`released`, offer_expired) and
// the desk sets the doctor away.
//
// The countdown uses this computer's clock against the desk's deadline; a clock that is off
// shifts it, and the desk's answer to `accept` (not_offered) stays the judge.

import { $, el, show } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { departmentName, intakeList, patientLabel, redFlagList, urgencyBadge } from "./intake.js";

export class OfferList {
  constructor(connection, departments, onAccepted) {
    this.connection = connection;
    this.departments = departments;
    this.onAccepted = onAccepted;
    this.section = $("#offers");
    this.list = $("#offer-list");
    this.cards = new Map(); // consultation id → {card, deadline, countdown}
  }

  has(id) {
    return this.cards.has(id);
  }

  ids() {
    return [...this.cards.keys()];
  }

  // Shows an offer; true when it is new (not a repeat of one shown).
  onOffer(frame) {
    const view = frame.consultation;
    const known = this.cards.get(view.id);
    if (known) {
      known.deadline = frame.deadline_ms; // a repeat: "this is now so"
      this.tick();
      return false;
    }
    const countdown = el("p", { class: "countdown", attrs: { "aria-live": "off" } });
    const note = el("p", { class: "inline-note", attrs: { role: "status" } });
    const accept = el("button", { text: t("offers.accept"), attrs: { type: "button" } });
    const title = el("h3", {}, patientLabel(view.patient), " ", urgencyBadge(view.urgency));
    const card = el(
      "li",
      { class: `offer-card urgency-edge-${view.urgency}`, attrs: { "data-consultation": view.id } },
      title,
      el("p", { class: "muted", text: departmentName(this.departments, view.department) }),
      redFlagList(view.red_flags),
      intakeList(view.intake),
      countdown,
      accept,
      note,
    );
    accept.addEventListener("click", async () => {
      accept.disabled = true;
      note.textContent = "";
      try {
        const reply = await this.connection.request({ type: "accept", consultation: view.id });
        this.remove(view.id);
        this.onAccepted(reply.consultation);
      } catch (error) {
        accept.disabled = false;
        note.textContent = error.code === "not_offered" ? t("offers.gone") : t("offers.failed", { reason: error.message });
      }
    });
    this.cards.set(view.id, { card, deadline: frame.deadline_ms, countdown });
    this.list.append(card);
    show(this.section, true);
    this.tick();
    return true;
  }

  remove(id) {
    const entry = this.cards.get(id);
    if (!entry) return false;
    entry.card.remove();
    this.cards.delete(id);
    show(this.section, this.cards.size > 0);
    return true;
  }

  // Called every second by the console.
  tick() {
    for (const { deadline, countdown } of this.cards.values()) {
      const left = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
      countdown.textContent = t("offers.countdown", { s: left });
      countdown.classList.toggle("hurry", left <= 10);
    }
  }
}
