// What a patient told the desk before a doctor saw them: the intake form, the red flags it raised
// and the urgency. Shared by the offer cards and the consultation view, so a case reads the same
// wherever it shows. Everything here was typed by a patient (or derived from it): text only.

import { el } from "../common/dom.js";
import { t } from "../common/i18n.js";

// Urgencies from the least to the most pressing (docs/protocol.md, RedFlagHit).
const URGENCY_ORDER = ["routine", "priority", "urgent", "emergency"];
// A guest's user id ("g-" and 16 hex characters) is long; its tail tells two patients apart.
const SHORT_ID_CHARS = 6;

export function patientLabel(userId) {
  const id = userId.length > SHORT_ID_CHARS + 2 ? `…${userId.slice(-SHORT_ID_CHARS)}` : userId;
  return t("case.patient", { id });
}

export function departmentName(departments, id) {
  const found = departments.find((department) => department.id === id);
  return found ? found.name : id;
}

export function urgencyBadge(urgency) {
  return el("span", { class: `urgency urgency-${urgency}`, text: t(`urgency.${urgency}`) });
}

// The red flags, most pressing first; null when none fired.
export function redFlagList(flags) {
  if (!flags || !flags.length) return null;
  const sorted = [...flags].sort((a, b) => URGENCY_ORDER.indexOf(b.urgency) - URGENCY_ORDER.indexOf(a.urgency));
  return el(
    "ul",
    { class: "redflags" },
    ...sorted.map((flag) => el("li", { class: `flag flag-${flag.urgency}` }, urgencyBadge(flag.urgency), el("span", { class: "phrase", text: flag.phrase }))),
  );
}

// Symptoms, age band and duration as a description list.
export function intakeList(intake) {
  if (!intake) return el("p", { class: "muted", text: t("case.noIntake") });
  const notGiven = t("case.notGiven");
  const age = intake.age_band ? t("case.ageValue", { band: intake.age_band }) : notGiven;
  const duration = intake.duration ? t(`intake.duration.${intake.duration}`) : notGiven;
  return el(
    "dl",
    { class: "intake" },
    el("dt", { text: t("case.symptoms") }),
    el("dd", { class: "bubble symptoms", text: intake.symptoms }),
    el("dt", { text: t("case.ageBand") }),
    el("dd", { text: age }),
    el("dt", { text: t("case.duration") }),
    el("dd", { text: duration }),
  );
}
