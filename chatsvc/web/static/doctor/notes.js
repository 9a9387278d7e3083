// Short notes to the doctor that outlive what they are about (a tab closed by a transfer, an
// offer that expired), and the screen-reader announcer for new messages. A note stays until it is
// dismissed, so a doctor looking at another window does not miss why a patient disappeared.

import { el } from "../common/dom.js";
import { t } from "../common/i18n.js";

// More than this many notes is clutter: the oldest go first.
const MAX_NOTES = 4;

export class Notes {
  constructor(list, announcer) {
    this.list = list;
    this.announcer = announcer;
  }

  add(text, kind = "info") {
    const item = el("li", { class: `note banner ${kind}` }, el("span", { text }));
    const dismiss = el("button", {
      class: "secondary small",
      text: "×",
      attrs: { type: "button", "aria-label": t("notes.dismiss") },
      on: { click: () => item.remove() },
    });
    item.append(dismiss);
    this.list.prepend(item);
    while (this.list.children.length > MAX_NOTES) this.list.lastElementChild.remove();
  }

  // Read out by screen readers (a polite live region), not shown.
  announce(text) {
    // Replacing the node (rather than its text) makes repeated identical texts announced again.
    this.announcer.replaceChildren(el("p", { text }));
  }
}
