// The open consultations as tabs: one tab per patient (label, department, urgency, an unread
// badge, "ended"), one panel shown at a time. On a wide screen a WAI-ARIA tablist (arrow keys,
// Home/End move between tabs); on a phone the stylesheet hides it and shows a <select> instead,
// kept in step with it, so a row of tabs never overflows a narrow screen.

import { $, el, show } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { urgencyBadge } from "./intake.js";

export class Tabs {
  constructor(onSelect) {
    this.onSelect = onSelect;
    this.list = $("#tablist");
    this.select = $("#tab-select");
    this.bar = $("#tabbar");
    this.empty = $("#no-consultations");
    this.tabs = new Map(); // id → {tab, option, panel, info}
    this.selected = null;
    this.list.addEventListener("keydown", (event) => this.onKey(event));
    this.select.addEventListener("change", () => this.choose(this.select.value, false));
    this.counter = 0;
  }

  get size() {
    return this.tabs.size;
  }

  has(id) {
    return this.tabs.has(id);
  }

  // info: {label, department, urgency, unread, ended}
  add(id, panel, info) {
    this.counter += 1;
    const tabId = `tab-${this.counter}`;
    panel.id = `panel-${this.counter}`;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", tabId);
    panel.hidden = true;
    const tab = el("button", {
      class: "tab",
      attrs: { type: "button", role: "tab", id: tabId, "aria-controls": panel.id, "aria-selected": "false", tabindex: "-1", "data-consultation": id },
      on: { click: () => this.choose(id, false) },
    });
    const option = el("option", { attrs: { value: id } });
    this.tabs.set(id, { tab, option, panel, info });
    this.list.append(tab);
    this.select.append(option);
    $("#panels").append(panel);
    this.render(id);
    this.refreshEmpty();
    if (!this.selected) this.choose(id, false);
  }

  update(id, changes) {
    const entry = this.tabs.get(id);
    if (!entry) return;
    Object.assign(entry.info, changes);
    this.render(id);
  }

  remove(id) {
    const entry = this.tabs.get(id);
    if (!entry) return;
    const order = [...this.tabs.keys()];
    const index = order.indexOf(id);
    entry.tab.remove();
    entry.option.remove();
    entry.panel.remove();
    this.tabs.delete(id);
    if (this.selected === id) {
      this.selected = null;
      const next = order[index + 1] ?? order[index - 1];
      if (next !== undefined && next !== id) this.choose(next, false);
    }
    this.refreshEmpty();
  }

  // Shows the tab `id`; focusTab moves keyboard focus to its tab (arrow-key navigation).
  choose(id, focusTab) {
    if (!this.tabs.has(id)) return;
    this.selected = id;
    for (const [key, entry] of this.tabs) {
      const on = key === id;
      entry.tab.setAttribute("aria-selected", String(on));
      entry.tab.tabIndex = on ? 0 : -1;
      entry.panel.hidden = !on;
    }
    this.select.value = id;
    if (focusTab) this.tabs.get(id).tab.focus();
    this.onSelect(id);
  }

  onKey(event) {
    const order = [...this.tabs.keys()];
    const index = order.indexOf(this.selected);
    let next = null;
    if (event.key === "ArrowRight") next = order[(index + 1) % order.length];
    else if (event.key === "ArrowLeft") next = order[(index - 1 + order.length) % order.length];
    else if (event.key === "Home") next = order[0];
    else if (event.key === "End") next = order[order.length - 1];
    if (next === null || next === undefined) return;
    event.preventDefault();
    this.choose(next, true);
  }

  render(id) {
    const { tab, option, info } = this.tabs.get(id);
    // The number for the eye, the words for a screen reader (an aria-label on a span is not
    // reliably read out).
    const badge = info.unread
      ? el(
          "span",
          { class: "unread-wrap" },
          el("span", { class: "unread", text: String(info.unread), attrs: { "aria-hidden": "true", "data-field": "unread" } }),
          el("span", { class: "visually-hidden", text: t("tabs.unread", { n: info.unread }) }),
        )
      : null;
    const parts = [
      el("span", { class: "tab-label", text: info.label }),
      el("span", { class: "tab-meta" }, urgencyBadge(info.urgency), el("span", { class: "muted", text: info.department })),
      info.ended ? el("span", { class: "ended-mark", text: t("tabs.ended") }) : null,
      badge,
    ];
    tab.replaceChildren(...parts.filter(Boolean));
    tab.classList.toggle("is-ended", Boolean(info.ended));
    const extras = [info.department, t(`urgency.${info.urgency}`)];
    if (info.ended) extras.push(t("tabs.ended"));
    if (info.unread) extras.push(t("tabs.unread", { n: info.unread }));
    option.textContent = `${info.label} (${extras.join(", ")})`;
  }

  refreshEmpty() {
    show(this.empty, this.tabs.size === 0);
    show(this.bar, this.tabs.size > 0);
  }
}
