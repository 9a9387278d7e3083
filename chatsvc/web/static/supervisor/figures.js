// What the dashboard shows of a `metrics` frame: which figures, how each is written, and the
// desk totals. Pure: no DOM, no socket. Field meanings are in docs/operations.md, "Desk metrics".
//
// Counts are written as plain integers (no grouping separators) so the text of a figure is the
// exact number the server sent; durations, rates and shares are rounded for reading, and their
// exact value stays in the element's data-value.

import { t } from "../common/i18n.js";

// Each figure: the field, its label key, how to write it, and `alarm(value)` when it deserves
// the danger colour.
const FIGURE = Object.fromEntries(
  [
    { field: "waiting", label: "figure.waiting", format: "count" },
    { field: "longest_wait_ms", label: "figure.longestWait", format: "wait" },
    { field: "wait_p50_ms", label: "figure.waitP50", format: "wait" },
    { field: "wait_p90_ms", label: "figure.waitP90", format: "wait" },
    { field: "doctors_available", label: "figure.doctorsAvailable", format: "count" },
    { field: "doctors_busy", label: "figure.doctorsBusy", format: "count" },
    { field: "doctors_away", label: "figure.doctorsAway", format: "count" },
    { field: "active_consultations", label: "figure.active", format: "count" },
    { field: "started_last_minute", label: "figure.started", format: "count" },
    { field: "ended_last_minute", label: "figure.ended", format: "count" },
    { field: "abandoned_last_minute", label: "figure.abandoned", format: "count", alarm: (v) => v > 0 },
    { field: "abandonment_rate", label: "figure.abandonmentRate", format: "share" },
    { field: "utilisation", label: "figure.utilisation", format: "share" },
    { field: "eta_within_share", label: "figure.etaAccuracy", format: "share" },
    { field: "red_flags_waiting", label: "figure.redFlagsWaiting", format: "count" },
    { field: "red_flags_overdue", label: "figure.redFlagsOverdue", format: "count", alarm: (v) => v > 0 },
    { field: "messages_per_s", label: "figure.messagesPerSecond", format: "rate" },
  ].map((figure) => [figure.field, figure]),
);

function pick(...fields) {
  return fields.map((field) => FIGURE[field]);
}

export const DEPARTMENT_FIGURES = pick(
  "waiting",
  "longest_wait_ms",
  "wait_p50_ms",
  "wait_p90_ms",
  "doctors_available",
  "doctors_busy",
  "doctors_away",
  "active_consultations",
  "started_last_minute",
  "ended_last_minute",
  "abandoned_last_minute",
  "abandonment_rate",
  "utilisation",
  "eta_within_share",
  "red_flags_waiting",
  "red_flags_overdue",
);

// The desk totals leave out what cannot be added up honestly across departments: a doctor on
// duty in two departments is counted in each (doctors, slots, utilisation), and percentiles of
// parts do not make a percentile of the whole (p50/p90).
export const DESK_FIGURES = pick(
  "waiting",
  "longest_wait_ms",
  "active_consultations",
  "started_last_minute",
  "ended_last_minute",
  "abandoned_last_minute",
  "abandonment_rate",
  "eta_within_share",
  "red_flags_overdue",
  "messages_per_s",
);

const SUM_FIELDS = [
  "waiting",
  "active_consultations",
  "started_last_minute",
  "ended_last_minute",
  "abandoned_last_minute",
  "matched_in_window",
  "abandoned_in_window",
  "red_flags_waiting",
  "red_flags_overdue",
  "eta_checks",
];

// The whole desk from its departments and the frame's desk-wide figures. The abandonment rate
// and the ETA share are recomputed from the summed counts (the same definitions as per
// department), not averaged.
export function deskTotals(frame) {
  const totals = Object.fromEntries(SUM_FIELDS.map((field) => [field, 0]));
  let longest = 0;
  let etaWithin = 0;
  for (const d of frame.departments) {
    for (const field of SUM_FIELDS) totals[field] += d[field] ?? 0;
    longest = Math.max(longest, d.longest_wait_ms ?? 0);
    if (d.eta_within_share !== null) etaWithin += d.eta_within_share * d.eta_checks;
  }
  const settled = totals.matched_in_window + totals.abandoned_in_window;
  return {
    ...totals,
    longest_wait_ms: longest,
    abandonment_rate: settled ? totals.abandoned_in_window / settled : null,
    eta_within_share: totals.eta_checks ? etaWithin / totals.eta_checks : null,
    messages_per_s: frame.messages_per_s,
  };
}

// "45 s", "4 min 05 s", "1 h 12 min"; a wait of null (nobody matched in the window) is "—".
export function formatWait(ms) {
  if (ms === null || ms === undefined) return t("value.none");
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return t("wait.seconds", { s: seconds });
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return t("wait.minutes", { m: minutes, s: String(seconds % 60).padStart(2, "0") });
  return t("wait.hours", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

export function formatValue(format, value) {
  if (value === null || value === undefined) return t("value.none");
  switch (format) {
    case "count":
      return String(value);
    case "wait":
      return formatWait(value);
    case "share":
      return t("value.percent", { n: Math.round(value * 100) });
    case "rate":
      return value.toFixed(1);
    default:
      return String(value);
  }
}

// Milliseconds → HH:MM:SS in `locale` (the dashboard moves by the second).
export function formatClock(ms, locale) {
  return new Date(ms).toLocaleTimeString(locale, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
