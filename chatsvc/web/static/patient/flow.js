// The screens before the queue: the not-for-emergencies notice with consent, the choice of
// department (with where the patient would stand in each), and the short intake that joins.
//
// Nothing here decides what happens after `join`: the reply goes to `onJoined`, and the screens
// that follow react to the server's frames (patient.js wires them).

import { $, el, show } from "../common/dom.js";
import { formatDuration, t } from "../common/i18n.js";
import { showScreen, currentScreen } from "./screens.js";

const MAX_SYMPTOMS = 2000;
// While the department screen shows, quotes are asked again this often: a wait changes as
// doctors come and go, and the patient should choose on today's figures, not the first ones.
const QUOTE_REFRESH_MS = 20000;

let welcome = null;

// The department's name in the page's language when we ship one, else the desk's own name.
export function departmentName(id) {
  const key = `departments.${id}`;
  const translated = t(key);
  if (translated !== key) return translated;
  const known = welcome && welcome.departments.find((d) => d.id === id);
  return known ? known.name : id;
}

// "You would be number 3 in line · about 10 min", or the honest "no doctor online" wording.
export function describeQuote(quote) {
  const parts = [];
  parts.push(quote.position <= 1 ? t("quote.next") : t("quote.position", { n: quote.position }));
  if (quote.eta_s === null) parts.push(t("quote.noDoctor"));
  else parts.push(t("quote.eta", { eta: formatDuration(quote.eta_s) }));
  return parts.join(" · ");
}

export class PreQueueFlow {
  // onJoined(reply, department): the join was accepted. onAlreadyIn(): the desk says this patient
  // already waits or is in a consultation (another tab): the server's frames will say which.
  constructor({ connection, onJoined, onAlreadyIn }) {
    this.connection = connection;
    this.onJoined = onJoined;
    this.onAlreadyIn = onAlreadyIn;
    this.department = null;
    this._quoteTimer = null;
    this._bind();
  }

  setWelcome(frame) {
    welcome = frame;
    const notice = frame.emergency;
    if (notice) {
      $("#emergency-text").textContent = notice.text;
      for (const link of [$("#emergency-number"), $("#guidance-number")]) {
        link.textContent = notice.number;
        link.href = `tel:${notice.number}`;
      }
    }
    this._renderDepartments(frame.departments);
  }

  // Back to the start (a new consultation, or after leaving the queue).
  start({ info = "" } = {}) {
    $("#notice-ack").checked = false;
    $("#notice-consent").checked = false;
    show($("#notice-error"), false);
    $("#intake-form").reset();
    this._updateCount();
    this._setInfo(info);
    showScreen("notice");
  }

  // After leaving the queue the consent still stands: straight to the choice of department.
  chooseAgain(info) {
    this._setInfo(info);
    this._showDepartments();
  }

  _setInfo(text) {
    const box = $("#department-info");
    box.textContent = text;
    show(box, Boolean(text));
  }

  _bind() {
    $("#notice-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const ack = $("#notice-ack");
      const consent = $("#notice-consent");
      const error = $("#notice-error");
      if (!ack.checked || !consent.checked) {
        error.textContent = t(!ack.checked ? "notice.needAck" : "notice.needConsent");
        show(error, true);
        (!ack.checked ? ack : consent).focus();
        return;
      }
      show(error, false);
      this._showDepartments();
    });
    $("#department-back").addEventListener("click", () => showScreen("notice"));
    $("#department-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const chosen = $("#department-list input:checked");
      const error = $("#department-error");
      if (!chosen) {
        error.textContent = t("department.needChoice");
        show(error, true);
        const first = $("#department-list input");
        if (first) first.focus();
        return;
      }
      show(error, false);
      this.department = chosen.value;
      $("#intake-department").textContent = t("intake.department", { name: departmentName(chosen.value) });
      showScreen("intake");
    });
    $("#intake-back").addEventListener("click", () => this._showDepartments());
    $("#intake-symptoms").addEventListener("input", () => this._updateCount());
    $("#intake-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this._join();
    });
  }

  _updateCount() {
    const length = $("#intake-symptoms").value.length;
    $("#intake-count").textContent = t("intake.count", { n: length, max: MAX_SYMPTOMS });
  }

  _renderDepartments(departments) {
    const list = $("#department-list");
    const chosen = this.department;
    list.replaceChildren();
    for (const department of departments) {
      const id = `department-${department.id}`;
      const input = el("input", {
        attrs: { type: "radio", name: "department", value: department.id, id, "aria-describedby": `quote-${department.id}` },
      });
      if (department.id === chosen) input.checked = true;
      input.addEventListener("change", () => show($("#department-error"), false));
      list.append(
        el(
          "label",
          { class: "choice", attrs: { for: id } },
          input,
          el(
            "span",
            { class: "choice-body" },
            el("span", { class: "choice-name", text: departmentName(department.id) }),
            el("span", { class: "choice-quote muted", attrs: { id: `quote-${department.id}` } }),
            el("span", { class: "choice-surge", text: t("quote.surge"), attrs: { id: `surge-${department.id}`, hidden: true } }),
          ),
        ),
      );
    }
  }

  _showDepartments() {
    showScreen("department");
    this._quoteAll();
    clearInterval(this._quoteTimer);
    this._quoteTimer = setInterval(() => {
      if (currentScreen() !== "department") clearInterval(this._quoteTimer);
      else this._quoteAll();
    }, QUOTE_REFRESH_MS);
  }

  _quoteAll() {
    if (!welcome) return;
    for (const department of welcome.departments) {
      this.connection
        .request({ type: "quote", department: department.id })
        .then((quote) => {
          const line = $(`#quote-${department.id}`);
          if (!line) return;
          line.textContent = describeQuote(quote);
          show($(`#surge-${department.id}`), quote.surge);
        })
        .catch(() => {
          // No figure is better than a wrong one; the next refresh tries again.
        });
    }
  }

  async _join() {
    const symptoms = $("#intake-symptoms");
    const error = $("#intake-error");
    const text = symptoms.value.trim();
    if (!text) {
      error.textContent = t("intake.needSymptoms");
      show(error, true);
      symptoms.setAttribute("aria-invalid", "true");
      symptoms.focus();
      return;
    }
    symptoms.removeAttribute("aria-invalid");
    show(error, false);
    const submit = $("#intake-submit");
    submit.disabled = true;
    try {
      const reply = await this.connection.request({
        type: "join",
        department: this.department,
        intake: { symptoms: text.slice(0, MAX_SYMPTOMS), age_band: $("#intake-age").value, duration: $("#intake-duration").value },
        consent: $("#notice-consent").checked,
        notice_acknowledged: $("#notice-ack").checked,
      });
      this.onJoined(reply, this.department);
    } catch (failure) {
      if (failure.code === "already_waiting" || failure.code === "in_consultation") {
        this.onAlreadyIn(failure.code);
        return;
      }
      const known = ["notice_required", "consent_required", "unknown_department", "timeout", "closed"];
      error.textContent = t(known.includes(failure.code) ? `join.${failure.code}` : "join.failed");
      show(error, true);
      submit.focus();
    } finally {
      submit.disabled = false;
    }
  }
}
