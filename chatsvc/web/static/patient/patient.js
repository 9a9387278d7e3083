// The patient widget (/widget, inside the iframe /widget.js adds): wires the guest session, the
// Connection and the screens together.
//
// Where the patient stands is always the server's word: after every `welcome` the desk restores
// state (`queued` while waiting, `assigned` while with a doctor; docs/protocol.md, "Restore of
// state after hello"). A `ping` sent once the connection is open is answered after those frames,
// so when its `pong` comes and no screen was chosen, the patient has nothing open: start.

import { $, show } from "../common/dom.js";
import { Connection, gatewaySocketUrl } from "../common/connection.js";
import { loadStrings, pickLanguage, t, translate } from "../common/i18n.js";
import { ChatView } from "./chat.js";
import { Composer } from "./composer.js";
import { EndView } from "./ending.js";
import { PreQueueFlow } from "./flow.js";
import { confirmInline, currentScreen, showScreen } from "./screens.js";
import { GuestSession, SessionError } from "./session.js";
import { WaitingView, hideGuidance, showGuidance } from "./waiting.js";

// The loader passes the host page's language as #lang=<tag>; opened directly, the browser's.
function wantedLanguage() {
  const fromLoader = new URLSearchParams(window.location.hash.slice(1)).get("lang");
  return pickLanguage(fromLoader, navigator.language);
}

function showProblem(text, retry) {
  $("#problem-text").textContent = text;
  const button = $("#problem-retry");
  button.onclick = retry;
  show(button, Boolean(retry));
  showScreen("problem");
}

function connectionBanner(state) {
  const banner = $("#connection-banner");
  if (state === "reconnecting") {
    banner.textContent = t("connection.reconnectingPatient");
    show(banner, true);
  } else {
    show(banner, false);
  }
}

async function main() {
  const lang = await loadStrings(wantedLanguage(), ["common", "patient"]);
  translate(document);
  document.title = t("widget.title");
  $("#app").removeAttribute("aria-busy");

  const session = new GuestSession();
  try {
    await session.token();
  } catch (error) {
    sessionProblem(error);
    return;
  }

  const connection = new Connection({
    url: gatewaySocketUrl(),
    getToken: () => session.token(),
    renewToken: () => session.renew(),
    lang,
  });
  const chat = new ChatView({ connection });
  const composer = new Composer({ connection, chat });
  const waiting = new WaitingView({
    onLeave: () => connection.request({ type: "leave" }).catch(() => {}),
  });
  const ending = new EndView({
    getToken: () => session.token(),
    onNew: () => {
      hideGuidance();
      flow.start();
    },
  });
  const flow = new PreQueueFlow({
    connection,
    onJoined: (reply) => waiting.update(reply),
    onAlreadyIn: () => waiting.pending(),
  });
  let welcomed = false;
  let refusedOnce = false;

  connection.addEventListener("state", ({ detail }) => {
    connectionBanner(detail.state);
    if (detail.state === "open") {
      chat.resync();
      composer.resend();
      // Answered after the restore frames: nothing restored means nothing is open.
      connection
        .request({ type: "ping" })
        .then(() => {
          if (currentScreen() === "loading" && !ending.restore()) flow.start();
        })
        .catch(() => {});
    } else if (detail.state === "failed") {
      if (detail.code === 4001 && !refusedOnce) {
        // The stored guest token was refused (the desk's secret changed): a new guest.
        refusedOnce = true;
        session.forget();
        connection.start();
        return;
      }
      const key = detail.code === 4010 ? "connection.tooManyTabs" : "problem.refused";
      showProblem(t(key), () => window.location.reload());
    }
  });

  connection.addEventListener("message", ({ detail }) => chat.onMessage(detail));
  connection.addEventListener("reset", ({ detail }) => chat.onReset(detail));
  connection.addEventListener("frame", ({ detail: frame }) => {
    switch (frame.type) {
      case "welcome":
        if (!welcomed) flow.setWelcome(frame);
        welcomed = true;
        break;
      case "guidance":
        showGuidance(frame);
        break;
      case "queued":
        // With a doctor until now: the consultation went back to the queue (transfer, requeue).
        waiting.update(frame, { requeued: chat.active });
        break;
      case "assigned":
        hideGuidance();
        waiting.reset();
        chat.open(frame);
        break;
      case "left":
        // The guidance stays: the desk sends it again to a flagged patient who leaves unseen.
        flow.chooseAgain(t("waiting.left"));
        break;
      case "ended":
        chat.close();
        ending.show(frame);
        break;
      case "error":
        // `delivered` is fire-and-forget (no id, so a refusal has no ref): a desk that predates
        // it answers bad_frame, and we stop sending it.
        if (frame.code === "bad_frame" && !frame.ref && /deliver/i.test(frame.message)) chat.deliveredRefused();
        break;
      default:
        chat.onFrame(frame);
        break;
    }
  });

  confirmInline({
    trigger: $("#chat-end"),
    box: $("#end-confirm"),
    yes: $("#end-yes"),
    no: $("#end-cancel"),
    // already_ended and the like: the `ended` frame shows the end screen anyway.
    action: () => (chat.active ? connection.request({ type: "end", consultation: chat.consultation }).catch(() => {}) : null),
  });
  connection.start();
}

function sessionProblem(error) {
  if (error instanceof SessionError && error.code === "rate_limited") {
    const minutes = Math.max(1, Math.ceil(error.retryAfterS / 60));
    showProblem(t("problem.rateLimited", { minutes }), () => window.location.reload());
  } else {
    showProblem(t("problem.unavailable"), () => window.location.reload());
  }
}

main().catch(() => showProblem(t("problem.unavailable"), () => window.location.reload()));
