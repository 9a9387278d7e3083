// The patient widget's loader: a hospital page embeds the chat with one tag,
//   <script src="https://<chatsvc>/widget.js" async></script>
// This script adds a launcher button and, on click, the chat panel as an iframe from chatsvc's own
// origin, so the host page's scripts never see the patient's token or health data. The iframe's
// CSP (frame-ancestors, from [web] embed_origins) decides which sites may show it.
// Optional attributes on the tag: data-lang="zh-CN" (else the page's <html lang>), data-label.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || window.__chatsvcWidget) return;
  window.__chatsvcWidget = true;
  var origin = new URL(script.src, window.location.href).origin;
  var lang = script.getAttribute("data-lang") || document.documentElement.lang || navigator.language || "";
  var zh = /^zh\b/i.test(lang);
  var label = script.getAttribute("data-label") || (zh ? "在线问诊" : "Talk to a doctor");
  var closeLabel = zh ? "关闭问诊窗口" : "Close the consultation panel";

  var button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.setAttribute("aria-haspopup", "dialog");
  button.setAttribute("aria-expanded", "false");
  button.setAttribute("data-chatsvc", "launcher");
  var s = button.style;
  s.position = "fixed"; s.right = "16px"; s.bottom = "16px"; s.zIndex = "2147483000";
  s.padding = "12px 18px"; s.border = "0"; s.borderRadius = "24px"; s.cursor = "pointer";
  s.background = "#0b6e4f"; s.color = "#fff"; s.font = "600 16px system-ui, sans-serif";
  s.boxShadow = "0 2px 8px rgba(0,0,0,.25)";

  var panel = null;
  var frame = null;

  function place() {
    var small = window.innerWidth < 520;
    var p = panel.style;
    p.position = "fixed"; p.zIndex = "2147483001"; p.background = "#fff";
    p.boxShadow = "0 4px 24px rgba(0,0,0,.3)"; p.overflow = "hidden";
    if (small) {
      p.left = "0"; p.top = "0"; p.right = "0"; p.bottom = "0"; p.width = "auto"; p.height = "auto";
      p.borderRadius = "0";
    } else {
      p.left = "auto"; p.top = "auto"; p.right = "16px"; p.bottom = "16px";
      p.width = "380px"; p.height = "min(640px, calc(100vh - 32px))"; p.borderRadius = "12px";
    }
  }

  function open() {
    if (!panel) {
      panel = document.createElement("div");
      panel.setAttribute("role", "dialog");
      panel.setAttribute("aria-label", label);
      panel.setAttribute("data-chatsvc", "panel");
      var close = document.createElement("button");
      close.type = "button";
      close.textContent = "×";
      close.setAttribute("aria-label", closeLabel);
      close.setAttribute("data-chatsvc", "close");
      var c = close.style;
      c.position = "absolute"; c.top = "6px"; c.right = "8px"; c.zIndex = "1"; c.border = "0";
      c.background = "transparent"; c.font = "24px system-ui, sans-serif"; c.cursor = "pointer";
      c.color = "#333";
      close.addEventListener("click", hide);
      frame = document.createElement("iframe");
      frame.src = origin + "/widget#lang=" + encodeURIComponent(lang);
      frame.title = label;
      frame.setAttribute("data-chatsvc", "frame");
      frame.setAttribute("allow", "clipboard-write");
      var f = frame.style;
      f.border = "0"; f.width = "100%"; f.height = "100%"; f.display = "block";
      panel.appendChild(close);
      panel.appendChild(frame);
      document.body.appendChild(panel);
      window.addEventListener("resize", place);
    }
    place();
    panel.style.display = "block";
    button.style.display = "none";
    button.setAttribute("aria-expanded", "true");
    frame.focus();
  }

  function hide() {
    panel.style.display = "none";
    button.style.display = "";
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  button.addEventListener("click", open);
  function mount() { document.body.appendChild(button); }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);
})();
