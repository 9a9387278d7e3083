// The waiting screen and the emergency guidance.
//
// Position and ETA come only from the server (`joined`, then `queued` on every change, and
// `queued` again in the restore after a reload): the page never counts down on its own, so it
// never promises a wait the desk did not estimate. An unknown ETA is said plainly.

import { $, show } from "../common/dom.js";
import { formatDuration, language, t } from "../common/i18n.js";
import { confirmInline, flash, showScreen } from "./screens.js";
import { departmentName } from "./flow.js";

export class WaitingView {
  // onLeave(): a promise that settles once `leave` was answered.
  constructor({ onLeave }) {
    confirmInline({
      trigger: $("#waiting-leave"),
      box: $("#leave-confirm"),
      yes: $("#leave-yes"),
      no: $("#leave-cancel"),
      action: onLeave,
    });
  }

  // frame: `joined` or `queued`. requeued: the patient was with a doctor and is back in line.
  update(frame, { requeued = false } = {}) {
    if (requeued) show($("#waiting-requeued"), true);
    $("#waiting-department").textContent = t("waiting.department", { name: departmentName(frame.department) });
    const position = $("#waiting-position");
    const eta = $("#waiting-eta");
    if (frame.position === 0) {
      // A push department offered the patient to a doctor at once (docs/protocol.md, joined).
      position.textContent = t("waiting.connecting");
      eta.textContent = "";
    } else {
      position.textContent = frame.position === 1 ? t("waiting.next") : t("waiting.position", { n: frame.position });
      eta.textContent =
        frame.eta_s === null ? t("waiting.noDoctor") : t("waiting.eta", { eta: formatDuration(frame.eta_s) });
    }
    show($("#waiting-surge"), Boolean(frame.surge));
    // With seconds: each update visibly changes it, so the patient sees the figures are live.
    const time = new Date().toLocaleTimeString(language(), { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    $("#waiting-updated").textContent = t("waiting.updated", { time });
    flash($("#queue-status"));
    show($("#leave-confirm"), false);
    $("#waiting-leave").disabled = false;
    showScreen("waiting");
  }

  // Joined, but the desk has no place to tell yet (another tab joined; an offer is pending).
  pending() {
    $("#waiting-position").textContent = t("waiting.connecting");
    $("#waiting-eta").textContent = "";
    $("#waiting-department").textContent = "";
    $("#waiting-updated").textContent = "";
    show($("#waiting-surge"), false);
    showScreen("waiting");
  }

  reset() {
    show($("#waiting-requeued"), false);
    show($("#leave-confirm"), false);
  }
}

// Emergency guidance stays on top of whatever shows until the patient is with a doctor: it may
// save a life, so it is announced at once (role=alert) and never hidden behind a screen change.
export function showGuidance(frame) {
  $("#guidance-text").textContent = frame.text;
  const link = $("#guidance-number");
  link.textContent = frame.number;
  link.href = `tel:${frame.number}`;
  show($("#guidance"), true);
}

export function hideGuidance() {
  show($("#guidance"), false);
}
