// The queue panel: per department, how many patients wait, the longest wait and how many of them
// raised a red flag; and the "Take next patient" button (pull routing).
//
// `queue_summary` frames may carry one department or all of them: rows are merged by id. The
// longest wait keeps growing between frames (they come every 15 s at least), so it is shown as
// the figure of the last frame plus the time since, refreshed by the console's ticker.

import { $, el } from "../common/dom.js";
import { formatDuration, t } from "../common/i18n.js";

// A refusal of take_next stays this long, then the panel is quiet again.
const NOTE_MS = 8000;

export class QueuePanel {
  constructor(connection, onTaken) {
    this.connection = connection;
    this.onTaken = onTaken;
    this.departments = [];
    this.loads = new Map(); // id → {load, at}
    this.list = $("#queue-list");
    this.button = $("#take-next");
    this.note = $("#take-next-note");
    this.noteTimer = null;
    this.button.addEventListener("click", () => this.takeNext());
  }

  setDepartments(departments) {
    this.departments = departments;
    this.render();
  }

  onSummary(frame) {
    const at = Date.now();
    for (const load of frame.departments) this.loads.set(load.id, { load, at });
    this.render();
  }

  async takeNext() {
    this.say("");
    this.button.disabled = true;
    try {
      // A new id per click: the desk would answer a repeated id with its first answer for a day.
      const reply = await this.connection.request({ type: "take_next" });
      this.onTaken(reply.consultation);
    } catch (error) {
      const key = `take.${error.code}`;
      this.say(t(key) === key ? t("take.failed", { reason: error.message }) : t(key));
    } finally {
      this.button.disabled = false;
    }
  }

  say(text) {
    clearTimeout(this.noteTimer);
    this.note.textContent = text;
    if (text) this.noteTimer = setTimeout(() => (this.note.textContent = ""), NOTE_MS);
  }

  render() {
    const rows = this.departments.map((department) => this.row(department));
    // A department in a summary but not in the welcome (renamed desk): still shown.
    for (const id of this.loads.keys()) {
      if (!this.departments.some((department) => department.id === id)) rows.push(this.row({ id, name: id, routing: "pull" }));
    }
    this.list.replaceChildren(...rows);
  }

  row(department) {
    const entry = this.loads.get(department.id);
    const load = entry ? entry.load : { waiting: 0, longest_wait_s: 0, red_flags_waiting: 0 };
    const waitedS = load.waiting ? load.longest_wait_s + (Date.now() - entry.at) / 1000 : null;
    const flags = load.red_flags_waiting;
    return el(
      "li",
      { class: "queue-row", attrs: { "data-department": department.id } },
      el("span", { class: "queue-name", text: department.name }),
      department.routing === "push" ? el("span", { class: "routing", text: t("queue.push") }) : null,
      el(
        "span",
        { class: "queue-figures" },
        el("span", { class: "figure" }, el("strong", { text: String(load.waiting), attrs: { "data-field": "waiting" } }), " ", t("queue.waiting")),
        el("span", { class: "figure", attrs: { "data-field": "longest" } }, `${t("queue.longest")} `, waitedS === null ? t("queue.none") : formatDuration(waitedS)),
        el(
          "span",
          { class: flags ? "figure flagged" : "figure", attrs: { "data-field": "red-flags" } },
          el("strong", { text: String(flags) }),
          " ",
          t("queue.redFlags"),
        ),
      ),
    );
  }
}
