// The time-series charts, drawn by the vendored uPlot (window.uPlot, loaded by a classic
// <script> before this module; /static/vendor/uplot/). One chart per question a supervisor asks
// ("is the queue growing?", "are waits getting longer?"), one line per department in the same
// colour on every chart; a second figure on the same chart is dashed.
//
// The charts are redrawn from History each frame (at most 900 points × a few lines: far below
// what uPlot draws in a millisecond) and resized with their boxes. A canvas says nothing to a
// screen reader, so each chart is hidden from it and its caption says where the same figures are
// in words: the tiles.

import { el } from "../common/dom.js";
import { t } from "../common/i18n.js";
import { formatClock } from "./figures.js";

// Colours that keep AA contrast on white and stay apart for the common colour blindnesses.
const PALETTE = ["#0b6e4f", "#1a73e8", "#b5478a", "#8a5300", "#5b4bc4", "#2f7d8c", "#b42318"];
const DASH = [6, 4];
const HEIGHT = 190;
const MINUTE_MS = 60000;
// Counts never get half-steps on their axis.
const WHOLE_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

export const CHARTS = [
  { name: "waiting", title: "chart.waiting", lines: [{ field: "waiting" }], whole: true },
  {
    name: "waits",
    title: "chart.waits",
    lines: [
      { field: "wait_p50_ms", label: "chart.p50", scale: 1 / MINUTE_MS },
      { field: "wait_p90_ms", label: "chart.p90", scale: 1 / MINUTE_MS, dash: true },
    ],
  },
  {
    name: "doctors",
    title: "chart.doctors",
    lines: [
      { field: "doctors_available", label: "chart.available" },
      { field: "doctors_busy", label: "chart.busy", dash: true },
    ],
    whole: true,
  },
  { name: "active", title: "chart.active", lines: [{ field: "active_consultations" }], whole: true },
  {
    name: "flow",
    title: "chart.flow",
    lines: [
      { field: "started_last_minute", label: "chart.started" },
      { field: "abandoned_last_minute", label: "chart.abandoned", dash: true },
    ],
    whole: true,
  },
  { name: "messages", title: "chart.messages", lines: [{ field: "messages_per_s", label: "chart.deskWide" }], desk: true },
];

export class Charts {
  // root: the container of the charts; names: Map id → department name; locale(): the
  // locale to write times in.
  constructor(root, names, locale) {
    this.root = root;
    this.names = names;
    this.locale = locale;
    this.plots = {}; // chart name → uPlot instance (read by the browser tests)
    this.hosts = {};
    this.departments = [];
    this.observer = new ResizeObserver((entries) => {
      for (const entry of entries) this._fit(entry.target);
    });
  }

  // Redraws every chart from `history`; `departments` are the ids seen, in order. A new
  // department rebuilds the charts with a line for it.
  update(history, departments) {
    if (departments.join() !== this.departments.join() || !Object.keys(this.plots).length) {
      this.departments = [...departments];
      this._build(history);
      return;
    }
    for (const chart of CHARTS) this.plots[chart.name].setData(this._data(chart, history));
  }

  clear() {
    this._destroy();
    this.departments = [];
  }

  _build(history) {
    this._destroy();
    for (const chart of CHARTS) {
      const host = el("div", { class: "chart-host", attrs: { "aria-hidden": "true", "data-chart": chart.name } });
      const figure = el(
        "figure",
        { class: "chart" },
        el(
          "figcaption",
          {},
          el("span", { class: "chart-title", text: t(chart.title) }),
          el("span", { class: "visually-hidden", text: t("chart.inWords") }),
        ),
        host,
      );
      this.root.append(figure);
      this.hosts[chart.name] = host;
      const plot = new window.uPlot(this._options(chart, host), this._data(chart, history), host);
      this.plots[chart.name] = plot;
      host.dataset.series = String(plot.series.length - 1);
      this.observer.observe(host);
    }
  }

  _destroy() {
    this.observer.disconnect();
    for (const plot of Object.values(this.plots)) plot.destroy();
    this.plots = {};
    this.hosts = {};
    this.root.replaceChildren();
  }

  _fit(host) {
    const name = host.dataset.chart;
    const plot = this.plots[name];
    const width = Math.floor(host.clientWidth);
    if (plot && width > 0 && width !== plot.width) plot.setSize({ width, height: HEIGHT });
  }

  _lines(chart) {
    // [{line, department, colour, label}] in series order.
    if (chart.desk) return chart.lines.map((line) => ({ line, department: null, colour: PALETTE[0], label: t(line.label) }));
    const lines = [];
    this.departments.forEach((department, index) => {
      const name = this.names.get(department) || department;
      for (const line of chart.lines) {
        const label = line.label ? `${name} ${t(line.label)}` : name;
        lines.push({ line, department, colour: PALETTE[index % PALETTE.length], label });
      }
    });
    return lines;
  }

  _data(chart, history) {
    const xs = history.points.map((point) => point.t / 1000);
    const series = this._lines(chart).map(({ line, department }) =>
      history.points.map((point) => {
        if (!point.frame) return null;
        const source = department === null ? point.frame : point.byDept.get(department);
        const value = source ? source[line.field] : null;
        return value === null || value === undefined ? null : value * (line.scale || 1);
      }),
    );
    return [xs, ...series];
  }

  _options(chart, host) {
    const locale = this.locale();
    return {
      width: Math.max(200, Math.floor(host.clientWidth || this.root.clientWidth || 300)),
      height: HEIGHT,
      series: [
        { label: t("chart.time"), value: (u, v) => (v === null ? "" : formatClock(v * 1000, locale)) },
        ...this._lines(chart).map(({ line, colour, label }) => ({
          label,
          stroke: colour,
          width: 2,
          dash: line.dash ? DASH : undefined,
          points: { show: false },
          spanGaps: false,
        })),
      ],
      scales: {
        x: { time: true },
        y: { range: (u, min, max) => [0, Math.max(chart.whole ? 4 : 1, (max || 0) * 1.15)] },
      },
      axes: [
        { space: 90, values: (u, splits) => splits.map((s) => formatClock(s * 1000, locale)) },
        { size: 44, ...(chart.whole ? { incrs: WHOLE_STEPS } : {}) },
      ],
      // Labels only: the values are in the tiles, and live values would make the legend jump.
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
    };
  }
}
