// Doctor console — entry point. Loads the strings in the browser's language, then either the
// sign-in form (no token in this tab) or the console. See console.js for how the parts fit.

import { pickLanguage, loadStrings, translate, t } from "../common/i18n.js";
import { $, show } from "../common/dom.js";
import { DoctorConsole } from "./console.js";
import { showSignIn, storedToken } from "./signin.js";

async function main() {
  await loadStrings(pickLanguage(navigator.language), ["common", "doctor"]);
  translate();
  document.title = t("app.pageTitle");
  const token = storedToken();
  if (!token) {
    showSignIn();
    return;
  }
  show($("#signin"), false);
  show($("#console"), true);
  new DoctorConsole(token).start();
}

main();
