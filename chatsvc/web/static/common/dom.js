// Small DOM helpers. Text typed by patients and doctors goes in with textContent only: nothing
// here ever parses a string as HTML.

// el("li", {class: "msg", text: entry.text, attrs: {"data-seq": 3}}, child, …)
export function el(tag, options = {}, ...children) {
  const element = document.createElement(tag);
  if (options.class) element.className = options.class;
  if (options.text !== undefined) element.textContent = options.text;
  for (const [name, value] of Object.entries(options.attrs || {})) {
    if (value !== null && value !== undefined && value !== false) element.setAttribute(name, String(value));
  }
  for (const [name, handler] of Object.entries(options.on || {})) element.addEventListener(name, handler);
  for (const child of children) if (child) element.append(child);
  return element;
}

export function $(selector, root = document) {
  return root.querySelector(selector);
}

export function show(element, visible = true) {
  element.hidden = !visible;
}

// A file download of text made in the page (a transcript), without a server round trip.
export function download(filename, text, type = "text/plain") {
  const url = URL.createObjectURL(new Blob([text], { type: `${type};charset=utf-8` }));
  const link = el("a", { attrs: { href: url, download: filename } });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// The token a sign-in link carries in its fragment (#token=…): read once, kept for this tab in
// sessionStorage, and wiped from the address bar so it is not bookmarked or shared by accident.
// The fragment never reaches the server or its logs.
export function tokenFromLink(storageKey) {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const fromLink = params.get("token");
  if (fromLink) {
    sessionStorage.setItem(storageKey, fromLink);
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(storageKey);
}
