// The safety alerts panel: red-flagged patients waiting past `red_flag_alert_s`
// (overdue_alerts) and urgent, emergency or red-flagged patients who left unserved within the
// window (abandon_alerts), newest first.
//
// The metrics frame carries the alerts that hold now, every second. The visible list is kept in
// step with it (keyed by kind and ticket, so an item stays the same element while it lasts); a
// separate role="alert" region speaks only alerts this page has not announced before, so a
// screen reader hears each new one once instead of the whole list every second.
//
// Test hooks: li[data-alert="overdue"|"abandoned"][data-ticket="…"][data-alert-dept="…"].

import { el } from "../common/dom.js";
import { formatDuration, t } from "../common/i18n.js";
import { formatClock, formatWait } from "./figures.js";

// The list as the frame has it: each alert with `since_ms`, when it became an alert.
export function alertsOf(frame) {
  const alerts = [];
  for (const d of frame.departments) {
    for (const overdue of d.overdue_alerts) {
      alerts.push({
        key: `overdue:${overdue.ticket}`,
        kind: "overdue",
        department: d.department,
        ticket: overdue.ticket,
        waited_ms: overdue.waited_ms,
        since_ms: frame.computed_ms - overdue.waited_ms + frame.red_flag_alert_s * 1000,
      });
    }
    for (const left of d.abandon_alerts) {
      alerts.push({
        key: `abandoned:${left.ticket}`,
        kind: "abandoned",
        department: d.department,
        ticket: left.ticket,
        since_ms: left.at_ms,
      });
    }
  }
  return alerts.sort((a, b) => b.since_ms - a.since_ms || a.key.localeCompare(b.key));
}

export class AlertsPanel {
  // root: the panel's <section>; names: Map of department id → display name; locale(): the
  // locale to write times in.
  constructor(root, names, locale) {
    this.root = root;
    this.names = names;
    this.locale = locale;
    this.list = root.querySelector("[data-alert-list]");
    this.none = root.querySelector("[data-alert-none]");
    this.count = root.querySelector("[data-alert-count]");
    this.help = root.querySelector("[data-alert-help]");
    this.announcer = root.querySelector("[data-alert-announcer]");
    this.items = new Map(); // key → {li, detail}
    this.announced = new Set();
  }

  update(frame) {
    const alerts = alertsOf(frame);
    const keys = new Set(alerts.map((alert) => alert.key));
    for (const [key, item] of this.items) {
      if (!keys.has(key)) {
        item.li.remove();
        this.items.delete(key);
      }
    }
    const fresh = [];
    alerts.forEach((alert, index) => {
      let item = this.items.get(alert.key);
      if (!item) {
        item = this._item(alert);
        this.items.set(alert.key, item);
      }
      item.detail.textContent = this._detail(alert);
      // Move only what is out of place: a moved node is re-read by some screen readers.
      if (this.list.children[index] !== item.li) this.list.insertBefore(item.li, this.list.children[index] || null);
      if (!this.announced.has(alert.key)) {
        this.announced.add(alert.key);
        fresh.push(this._sentence(alert));
      }
    });
    if (fresh.length) this.announcer.textContent = fresh.join(" ");
    this.none.hidden = alerts.length > 0;
    this.count.textContent = alerts.length ? t("alerts.count", { n: alerts.length }) : "";
    this.root.classList.toggle("has-alerts", alerts.length > 0);
    this.help.textContent = t("alerts.help", {
      wait: formatWait(frame.red_flag_alert_s * 1000),
      window: formatDuration(frame.window_s),
    });
    return alerts.length;
  }

  clear() {
    this.list.replaceChildren();
    this.items.clear();
    this.announced.clear();
    this.announcer.textContent = "";
    this.count.textContent = "";
    this.none.hidden = false;
    this.root.classList.remove("has-alerts");
  }

  _item(alert) {
    const detail = el("span", { class: "alert-detail" });
    const li = el(
      "li",
      {
        class: `alert-item ${alert.kind}`,
        attrs: { "data-alert": alert.kind, "data-ticket": alert.ticket, "data-alert-dept": alert.department },
      },
      el("span", { class: "alert-kind", text: t(`alerts.kind.${alert.kind}`) }),
      el("span", { class: "alert-dept", text: this.names.get(alert.department) || alert.department }),
      el("span", { class: "alert-ticket", text: t("alerts.ticket", { ticket: alert.ticket }) }),
      detail,
    );
    return { li, detail };
  }

  _detail(alert) {
    if (alert.kind === "overdue") return t("alerts.waited", { wait: formatWait(alert.waited_ms) });
    return t("alerts.leftAt", { time: formatClock(alert.since_ms, this.locale()) });
  }

  _sentence(alert) {
    return t(`alerts.say.${alert.kind}`, {
      department: this.names.get(alert.department) || alert.department,
      ticket: alert.ticket,
      detail: this._detail(alert),
    });
  }
}
