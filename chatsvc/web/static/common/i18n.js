// The pages' strings, per language: /static/i18n/<lang>/<part>.json, one part shared by every
// page ("common") and one per page ("patient", "doctor", "supervisor").
//
// Shipped: English ("en") and Simplified Chinese ("zh-CN"). A page picks the language it is
// asked for (the host page's <html lang>, handed to the widget), else the browser's, then the
// closest shipped one: the tag itself, its base language ("zh" → "zh-CN"), else English.
// Adding a language is adding a folder of JSON files with the same keys and naming it in SHIPPED.
//
// Elements carry `data-i18n="key"` (text content), `data-i18n-placeholder`, `data-i18n-label`
// (aria-label) or `data-i18n-title`; `translate(root)` fills them. Strings are only ever set as
// text, never as HTML.

export const SHIPPED = ["en", "zh-CN"];
const BASE_TO_SHIPPED = { en: "en", zh: "zh-CN" };

let strings = {};
let fallback = {};
let current = "en";

export function pickLanguage(...wanted) {
  for (const tag of wanted) {
    if (!tag) continue;
    const exact = SHIPPED.find((lang) => lang.toLowerCase() === tag.toLowerCase());
    if (exact) return exact;
    const base = BASE_TO_SHIPPED[tag.toLowerCase().split("-")[0]];
    if (base) return base;
  }
  return "en";
}

async function loadParts(lang, parts) {
  const loaded = await Promise.all(
    parts.map(async (part) => {
      const response = await fetch(`/static/i18n/${lang}/${part}.json`);
      if (!response.ok) throw new Error(`strings ${lang}/${part}: ${response.status}`);
      return response.json();
    }),
  );
  return Object.assign({}, ...loaded);
}

// Loads the strings of `parts` (e.g. ["common", "patient"]) in the language closest to `lang`.
export async function loadStrings(lang, parts) {
  current = pickLanguage(lang);
  fallback = await loadParts("en", parts);
  strings = current === "en" ? fallback : await loadParts(current, parts);
  document.documentElement.lang = current;
  return current;
}

export function language() {
  return current;
}

// The string for `key` with {name} placeholders filled from `vars`.
export function t(key, vars = {}) {
  const template = strings[key] ?? fallback[key] ?? key;
  return template.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

export function translate(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
  for (const element of root.querySelectorAll("[data-i18n-placeholder]")) {
    element.placeholder = t(element.dataset.i18nPlaceholder);
  }
  for (const element of root.querySelectorAll("[data-i18n-label]")) {
    element.setAttribute("aria-label", t(element.dataset.i18nLabel));
  }
  for (const element of root.querySelectorAll("[data-i18n-title]")) {
    element.title = t(element.dataset.i18nTitle);
  }
}

// "4 min", "1 h 5 min", in the page's language.
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return t("duration.unknown");
  const minutes = Math.max(1, Math.round(seconds / 60));
  if (minutes < 60) return t("duration.minutes", { n: minutes });
  return t("duration.hours", { h: Math.floor(minutes / 60), m: minutes % 60 });
}

export function formatTime(ms) {
  return new Date(ms).toLocaleTimeString(current, { hour: "2-digit", minute: "2-digit" });
}
