// The console's header: who is signed in, their status (available / away / offline), how many
// patients they hold against their capacity, and the connection banner.
//
// The status shown is the desk's, never a guess: a click sends `set_status`, and the radio only
// moves when a `status` frame says so, which also covers changes made elsewhere (another tab, an
// offer left to expire setting the doctor away, a presence lapse setting them offline). After a
// reload the desk does not say the status until it changes, so none is checked until then.

import { $, show } from "../common/dom.js";
import { t } from "../common/i18n.js";

// A refusal shown next to the status stays this long: long enough to read, then out of the way.
const NOTE_MS = 8000;

export class Header {
  constructor(connection) {
    this.connection = connection;
    this.status = null;
    this.capacity = null;
    this.active = 0;
    this.radios = [...document.querySelectorAll("input[name=status]")];
    this.note = $("#status-note");
    this.banner = $("#conn-banner");
    this.noteTimer = null;
    for (const radio of this.radios) {
      radio.addEventListener("change", () => radio.checked && this.choose(radio.value));
    }
    this.render();
  }

  setName(name) {
    $("#doctor-name").textContent = name || t("app.unnamed");
  }

  async choose(status) {
    this.say("");
    try {
      await this.connection.request({ type: "set_status", status });
      // The reply is a `status` frame, shown through onStatus like any other.
    } catch (error) {
      const key = `status.refused.${error.code}`;
      this.say(t(key) === key ? t("status.failed", { reason: error.message }) : t(key));
      this.render(); // back to what the desk says
    }
  }

  onStatus(frame) {
    this.status = frame.status;
    this.capacity = frame.capacity;
    this.render();
  }

  // The number of consultations this page holds: status frames are not sent on take/end.
  setActive(count) {
    this.active = count;
    this.render();
  }

  say(text) {
    clearTimeout(this.noteTimer);
    this.note.textContent = text;
    if (text) this.noteTimer = setTimeout(() => (this.note.textContent = ""), NOTE_MS);
  }

  render() {
    for (const radio of this.radios) radio.checked = radio.value === this.status;
    document.body.dataset.status = this.status || "unknown";
    $("#status-hint").hidden = this.status !== null;
    $("#load").textContent =
      this.capacity === null
        ? t("load.noCapacity", { active: this.active })
        : t("load.label", { active: this.active, capacity: this.capacity });
  }

  // The connection banner: nothing while open, a calm note while reconnecting.
  onConnection(state, code) {
    const banner = this.banner;
    if (state === "open" || state === "closed") {
      show(banner, false);
      return;
    }
    if (state === "connecting") {
      banner.className = "banner info";
      banner.textContent = t("connection.connecting");
    } else if (state === "reconnecting") {
      banner.className = "banner warn";
      banner.textContent = t("connection.reconnecting");
    } else {
      banner.className = "banner danger";
      banner.textContent = code === 4010 ? t("connection.tooManyTabs") : t("connection.failed", { reason: code });
    }
    show(banner, true);
  }
}
