// The figure tiles: one card for the whole desk, one per department, updated in place each
// second (elements are made once and only their text changes, so focus, selection and a screen
// reader's place survive the updates).
//
// Test hooks: every value is a <dd data-figure="<field>"> with data-dept="<department id>" (or
// data-scope="desk" for the totals); its text is what is shown, its data-value the raw number
// ("" for none). A department card is [data-dept-card="<id>"]; its surge flag is
// [data-surge="<id>"].

import { el } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { DEPARTMENT_FIGURES, DESK_FIGURES, deskTotals, formatValue } from "./figures.js";

export class Tiles {
  // deskRoot, departmentsRoot: containers; names: Map of department id → display name.
  constructor(deskRoot, departmentsRoot, names) {
    this.deskRoot = deskRoot;
    this.departmentsRoot = departmentsRoot;
    this.names = names;
    this.desk = null;
    this.cards = new Map(); // department id → {card, values: Map field → dd, surge}
  }

  update(frame) {
    if (!this.desk) this.desk = this._figureList(DESK_FIGURES, { "data-scope": "desk" });
    if (!this.deskRoot.firstChild) this.deskRoot.append(this.desk.list);
    this._fill(this.desk.values, DESK_FIGURES, deskTotals(frame));
    for (const figures of frame.departments) {
      const card = this.cards.get(figures.department) || this._addCard(figures.department);
      this._fill(card.values, DEPARTMENT_FIGURES, figures);
      card.surge.hidden = !figures.surge;
      card.card.classList.toggle("surging", figures.surge);
    }
  }

  // A queue_summary before the first metrics frame: enough to show the queues at once.
  preview(loads) {
    for (const load of loads) {
      const card = this.cards.get(load.id) || this._addCard(load.id);
      if (card.updated) continue; // the metrics frame has the last word once it has come
      this._set(card.values.get("waiting"), "count", load.waiting);
      this._set(card.values.get("longest_wait_ms"), "wait", load.longest_wait_s * 1000);
      this._set(card.values.get("red_flags_waiting"), "count", load.red_flags_waiting);
    }
  }

  clear() {
    this.deskRoot.replaceChildren();
    this.departmentsRoot.replaceChildren();
    this.desk = null;
    this.cards.clear();
  }

  _addCard(id) {
    const titleId = `dept-title-${id}`;
    const surge = el("span", {
      class: "surge-flag",
      text: t("surge.flag"),
      attrs: { "data-surge": id, title: t("surge.help"), hidden: true },
    });
    const { list, values } = this._figureList(DEPARTMENT_FIGURES, { "data-dept": id });
    const card = el(
      "article",
      { class: "dept-card", attrs: { "data-dept-card": id, "aria-labelledby": titleId } },
      el("h3", { text: this.names.get(id) || id, attrs: { id: titleId } }, surge),
      list,
    );
    // Department cards in id order, the order of the metrics frame.
    const after = [...this.cards.keys()].filter((other) => other > id).sort()[0];
    this.departmentsRoot.insertBefore(card, after ? this.cards.get(after).card : null);
    const entry = { card, values, surge, updated: false };
    this.cards.set(id, entry);
    return entry;
  }

  _figureList(figures, scope) {
    const values = new Map();
    const list = el("dl", { class: "figures" });
    for (const figure of figures) {
      const value = el("dd", { text: t("value.none"), attrs: { ...scope, "data-figure": figure.field, "data-value": "" } });
      values.set(figure.field, value);
      list.append(el("div", { class: "figure" }, el("dt", { text: t(figure.label) }), value));
    }
    return { list, values };
  }

  _fill(values, figures, source) {
    for (const figure of figures) {
      const value = source[figure.field];
      const dd = values.get(figure.field);
      this._set(dd, figure.format, value);
      dd.parentElement.classList.toggle("alarm", Boolean(figure.alarm && value !== null && figure.alarm(value)));
    }
    const card = source.department && this.cards.get(source.department);
    if (card) card.updated = true;
  }

  _set(dd, format, value) {
    const text = formatValue(format, value);
    if (dd.textContent !== text) dd.textContent = text;
    dd.dataset.value = value === null || value === undefined ? "" : String(value);
  }
}
