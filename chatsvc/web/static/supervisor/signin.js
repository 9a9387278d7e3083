// Signing in and out: the supervisor's token comes from the sign-in link (#token=…, kept for this
// tab in sessionStorage by tokenFromLink) or is pasted into the form. Nothing else is stored:
// closing the tab forgets the token.

import { $, tokenFromLink } from "../common/dom.js";

const TOKEN_KEY = "chatsvc.supervisor.token";

export function storedToken() {
  return tokenFromLink(TOKEN_KEY);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class SignInForm {
  // onToken(token): called with a token the supervisor pasted.
  constructor(onToken) {
    this.section = $("#sign-in");
    this.message = $("#sign-in-message");
    this.input = $("#token-input");
    $("#sign-in-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = this.input.value.trim();
      if (!token) return;
      this.input.value = "";
      sessionStorage.setItem(TOKEN_KEY, token);
      this.hide();
      onToken(token);
    });
  }

  // Shows the form, with `message` (why the supervisor is here again) when there is one.
  show(message = "", tone = "danger") {
    this.message.textContent = message;
    this.message.className = `banner ${tone}`;
    this.message.hidden = !message;
    this.section.hidden = false;
    this.input.focus();
  }

  hide() {
    this.section.hidden = true;
  }
}
