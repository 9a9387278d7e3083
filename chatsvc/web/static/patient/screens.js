// Which screen of the widget is showing, and where the keyboard focus goes.
//
// One screen at a time (sections #screen-<name> in widget.html). Showing a screen moves focus to
// its heading, so a keyboard or screen-reader user starts at the top of what is new rather than
// on a control that just vanished. Re-showing the current screen leaves focus alone: state frames
// repeat (docs/protocol.md, "State frames may repeat") and must not yank the focus about.

import { $, show } from "../common/dom.js";

let current = "loading";
const listeners = [];

export function currentScreen() {
  return current;
}

// fn(name) after each change of screen.
export function onScreen(fn) {
  listeners.push(fn);
}

export function showScreen(name, { focus = true } = {}) {
  if (name === current) return;
  for (const section of document.querySelectorAll(".screen")) show(section, section.id === `screen-${name}`);
  current = name;
  const heading = $(`#screen-${name} h1`);
  if (focus && heading) heading.focus();
  for (const fn of listeners) fn(name);
}

// An inline "are you sure?" (not window.confirm: it blocks the page, cannot be styled or
// translated, and reads badly in an iframe). `trigger` opens `box`; `yes` runs `action`.
export function confirmInline({ trigger, box, yes, no, action }) {
  trigger.addEventListener("click", () => {
    show(box, true);
    no.focus();
  });
  no.addEventListener("click", () => {
    show(box, false);
    trigger.focus();
  });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    try {
      await action();
      show(box, false);
    } finally {
      yes.disabled = false;
    }
  });
}

// A short-lived "Updated" cue: the class restarts a CSS highlight each time it is added.
export function flash(element) {
  element.classList.remove("flash");
  void element.offsetWidth; // restart the animation
  element.classList.add("flash");
}
