// The page's words: the server puts this language's catalogue (relay/i18n/<lang>.json) into
// the page as <script type="application/json" id="i18n">, data the CSP lets through.
// t("area.what", {name: value}) fills {name} placeholders. A key the catalogue lacks is
// shown as itself and reported on the console (the browser test fails on it).
"use strict";

const I18N = (() => {
  const node = document.getElementById("i18n");
  try { return node ? JSON.parse(node.textContent) : {}; } catch (e) { return {}; }
})();
const LANG = document.documentElement.lang || "en";

function t(key, params) {
  let text = I18N[key];
  if (text === undefined) {
    console.error(`i18n: no text for ${key} in ${LANG}`);
    text = key;
  }
  if (!params) return text;
  return text.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

// A label for a SPEC name (event, signal, status…): its translation when the catalogue has one,
// else the name itself (the fixed names are readable English already).
function label(area, name) {
  if (name === null || name === undefined) return "";
  const text = I18N[`${area}.${name}`];
  return text === undefined ? String(name) : text;
}
