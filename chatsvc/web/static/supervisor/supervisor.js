// The supervisor dashboard: signs in, keeps one connection to the gateway, and hands each
// `metrics` frame (every second; docs/protocol.md "Supervisors") to the tiles, the alerts panel
// and the charts. It only reads: a supervisor changes nothing on the desk from here.
//
// Modules: signin.js (token, form), figures.js (what is shown and how it is written), tiles.js,
// alerts.js, history.js (15 minutes of frames), charts.js (uPlot).

import { Connection, gatewaySocketUrl } from "../common/connection.js";
import { $ } from "../common/dom.js";
import { language, loadStrings, pickLanguage, t, translate } from "../common/i18n.js";
import { AlertsPanel } from "./alerts.js";
import { Charts } from "./charts.js";
import { formatClock } from "./figures.js";
import { History } from "./history.js";
import { SignInForm, forgetToken, storedToken } from "./signin.js";
import { Tiles } from "./tiles.js";

// The server pushes figures every second; this long without one and the page says the figures
// on screen are old, even when the socket looks open (Redis out of reach, a stuck gateway).
const STALE_AFTER_MS = 5000;
const STALE_CHECK_MS = 1000;
// Close codes that mean "this token will not do": back to the sign-in form.
const TOO_MANY_TABS = 4010;

// Times are written in the browser's own locale when it is of the page's language (en-GB gets a
// 24-hour clock, en-US a 12-hour one), else in the page's language.
function locale() {
  return pickLanguage(navigator.language) === language() ? navigator.language : language();
}

class Dashboard {
  constructor() {
    this.names = new Map(); // department id → name, from welcome
    this.history = new History();
    this.tiles = new Tiles($("#desk-tiles"), $("#department-tiles"), this.names);
    this.alerts = new AlertsPanel($("#alerts"), this.names, locale);
    this.charts = new Charts($("#chart-grid"), this.names, locale);
    this.form = new SignInForm((token) => this.start(token));
    this.connection = null;
    this.lastFrameAt = 0;
    this.banner = $("#banner");
    $("#sign-out").addEventListener("click", () => this.signOut());
    setInterval(() => this._checkStale(), STALE_CHECK_MS);
  }

  start(token) {
    this.stop();
    this._setBanner("info", t("connection.connecting"));
    const connection = new Connection({
      url: gatewaySocketUrl(),
      getToken: async () => token,
      // Staff tokens are issued by the hospital; the page cannot make one. At expiry the
      // supervisor is asked to sign in again.
      renewToken: async () => null,
      lang: language(),
    });
    connection.addEventListener("state", (event) => this._onState(connection, event.detail));
    connection.addEventListener("frame", (event) => this._onFrame(connection, event.detail));
    this.connection = connection;
    connection.start();
  }

  stop() {
    if (this.connection) this.connection.close();
    this.connection = null;
    this.history.clear();
    this.tiles.clear();
    this.alerts.clear();
    this.charts.clear();
    this.names.clear();
    this.lastFrameAt = 0;
    $("#dashboard").hidden = true;
    $("#sign-out").hidden = true;
    $("#who").hidden = true;
    $("[data-testid=updated]").hidden = true;
    document.title = t("title.document");
  }

  signOut() {
    forgetToken();
    this.stop();
    this._setBanner(null);
    this.form.show(t("signIn.signedOut"), "info");
  }

  // Back to the form, with why.
  refuse(message) {
    forgetToken();
    this.stop();
    this._setBanner(null);
    this.form.show(message);
    $("#app").setAttribute("aria-busy", "false");
  }

  _onState(connection, { state, code, reason }) {
    if (connection !== this.connection) return;
    if (state === "open") this._setBanner(null);
    else if (state === "connecting") this._setBanner("info", t("connection.connecting"));
    else if (state === "reconnecting") this._setBanner("warn", t("connection.reconnecting"));
    else if (state === "failed") {
      if (code === TOO_MANY_TABS) this.refuse(t("connection.tooManyTabs"));
      else this.refuse(t("signIn.refused", { reason: reason || code }));
    }
  }

  _onFrame(connection, frame) {
    if (connection !== this.connection) return;
    switch (frame.type) {
      case "welcome":
        this._welcome(frame);
        break;
      case "metrics":
        this._metrics(frame);
        break;
      case "queue_summary":
        this.tiles.preview(frame.departments);
        break;
      default:
        break; // pong, renewed, token_expiring, errors without a request: nothing to show
    }
  }

  _welcome(welcome) {
    // The server sends metrics to supervisors only; a doctor's or patient's token would show
    // an empty dashboard forever, so it is refused here with a reason.
    if (welcome.role !== "supervisor") {
      this.refuse(t(`signIn.notSupervisor.${welcome.role === "patient" ? "patient" : "doctor"}`));
      return;
    }
    const firstTime = $("#dashboard").hidden;
    // Counts as a frame for the staleness warning: a desk that never sends figures is also said.
    if (!this.lastFrameAt) this.lastFrameAt = Date.now();
    for (const department of welcome.departments) this.names.set(department.id, department.name);
    $("#who").textContent = t("signedInAs", { name: welcome.name || welcome.user_id });
    $("#who").hidden = false;
    $("#sign-out").hidden = false;
    $("#dashboard").hidden = false;
    $("#app").setAttribute("aria-busy", "false");
    if (firstTime) $("#alerts").focus({ preventScroll: true });
  }

  _metrics(frame) {
    this.lastFrameAt = Date.now();
    if (!this.history.add(frame)) return;
    this.tiles.update(frame);
    const alerts = this.alerts.update(frame);
    this.charts.update(
      this.history,
      frame.departments.map((d) => d.department),
    );
    const updated = $("#updated-time");
    updated.textContent = formatClock(frame.computed_ms, locale());
    updated.dateTime = new Date(frame.computed_ms).toISOString();
    updated.dataset.computedMs = String(frame.computed_ms);
    $("[data-testid=updated]").hidden = false;
    document.title = alerts ? t("title.withAlerts", { n: alerts }) : t("title.document");
    if (this.banner.dataset.kind === "stale") this._setBanner(null);
  }

  _checkStale() {
    if (!this.connection || !this.connection.open || !this.lastFrameAt) return;
    const age = Date.now() - this.lastFrameAt;
    if (age > STALE_AFTER_MS) this._setBanner("warn", t("stale", { s: Math.round(age / 1000) }), "stale");
  }

  _setBanner(tone, text = "", kind = tone) {
    this.banner.hidden = !tone;
    this.banner.className = tone ? `banner ${tone}` : "banner";
    this.banner.textContent = text;
    this.banner.dataset.kind = kind || "";
  }
}

async function main() {
  await loadStrings(navigator.language, ["common", "supervisor"]);
  translate();
  document.title = t("title.document");
  const dashboard = new Dashboard();
  // For the browser tests and for a curious supervisor's console: the live chart objects and
  // the figures held. Read-only use; nothing secret is in them (the token is not).
  window.__dashboard = {
    get charts() {
      return dashboard.charts.plots;
    },
    get points() {
      return dashboard.history.points.length;
    },
    get connection() {
      return dashboard.connection;
    },
  };
  const token = storedToken();
  if (token) dashboard.start(token);
  else {
    $("#app").setAttribute("aria-busy", "false");
    dashboard.form.show();
  }
}

main();
