// The end of a consultation: the outcome, the doctor's summary, the transcript to keep.
//
// The last ended consultation is remembered in localStorage (its id, outcome and summary: the
// patient's own record, on their own device, in chatsvc's origin) so that a reload of the end
// screen shows it again instead of starting over; "Start a new consultation" forgets it.

import { $, download, show } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { showScreen } from "./screens.js";

const STORAGE_KEY = "chatsvc.patient.ended";

export class EndView {
  // getToken(): the guest token, for the transcript request. onNew(): start again.
  constructor({ getToken, onNew }) {
    this.getToken = getToken;
    this.ended = null;
    $("#end-download").addEventListener("click", () => this._download());
    $("#end-new").addEventListener("click", () => {
      localStorage.removeItem(STORAGE_KEY);
      this.ended = null;
      onNew();
    });
  }

  // frame: `ended`. The answer to the patient's own `end` has no summary; the doctor's has one.
  show(frame) {
    const known = this.ended && this.ended.consultation === frame.consultation ? this.ended : null;
    const summary = frame.summary || (known ? known.summary : "");
    this.ended = { consultation: frame.consultation, outcome: frame.outcome, summary };
    localStorage.setItem(STORAGE_KEY, JSON.stringify(this.ended));
    $("#end-outcome").textContent = t(frame.outcome === "completed" ? "end.completed" : "end.patientLeft");
    $("#end-summary").textContent = summary;
    show($("#end-summary-box"), Boolean(summary));
    show($("#end-download-error"), false);
    showScreen("end");
  }

  // After a reload with nothing open at the desk: the end screen again, if one was showing.
  restore() {
    let stored = null;
    try {
      stored = JSON.parse(localStorage.getItem(STORAGE_KEY) || "null");
    } catch {
      stored = null;
    }
    if (!stored || typeof stored.consultation !== "string") return false;
    this.show({ type: "ended", ...stored });
    return true;
  }

  async _download() {
    const error = $("#end-download-error");
    show(error, false);
    const id = this.ended.consultation;
    try {
      const response = await fetch(`/api/consultations/${encodeURIComponent(id)}/transcript?format=text`, {
        headers: { Authorization: `Bearer ${await this.getToken()}` },
        cache: "no-store",
      });
      if (!response.ok) throw new Error(String(response.status));
      download(`consultation-${id}.txt`, await response.text());
    } catch {
      error.textContent = t("end.downloadFailed");
      show(error, true);
    }
  }
}
