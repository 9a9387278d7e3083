// Signing in and out of the console in this tab.
//
// The token comes from a sign-in link (/doctor#token=…, read by tokenFromLink, which wipes it
// from the address bar) or is pasted into the form. It lives in sessionStorage: this tab only,
// gone when the tab closes, never sent in a URL. Signing in or out reloads the page so the console
// always starts from a clean slate (no consultation of a previous sign-in left on screen).

import { $, show, tokenFromLink } from "../common/dom.js";
import { t } from "../common/i18n.js";

export const TOKEN_KEY = "chatsvc.doctor.token";
// Why the form is shown after a reload (a refusal seen by the previous page), for this tab only.
const REASON_KEY = "chatsvc.doctor.signin-reason";

export function storedToken() {
  return tokenFromLink(TOKEN_KEY);
}

export function signOut(reason = "signin.signedOut") {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.setItem(REASON_KEY, reason);
  window.location.replace(window.location.pathname);
}

// Shows the sign-in form; `reason` is a string key saying why (a refused token), if any.
export function showSignIn(reason = null) {
  const why = reason || sessionStorage.getItem(REASON_KEY);
  sessionStorage.removeItem(REASON_KEY);
  const message = $("#signin-message");
  message.textContent = why ? t(why) : "";
  message.className = why === "signin.signedOut" ? "banner info" : "banner danger";
  show(message, Boolean(why));
  show($("#console"), false);
  show($("#signin"), true);
  document.getElementById("app").removeAttribute("aria-busy");
  const form = $("#signin-form");
  const input = $("#signin-token");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    window.location.replace(window.location.pathname);
  });
  input.focus();
}
