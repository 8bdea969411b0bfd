// The fleet page: every relay seen on the MQTT broker (relay/+/state, availability,
// thumbnail), refreshed every 2 s from /api/fleet.
"use strict";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
  return e;
}

const IMAGES = {};

function picture(r) {
  let img = IMAGES[r.relay];
  if (!img) img = IMAGES[r.relay] = el("img", { alt: t("fleet.picture_alt", { relay: r.relay }) });
  const src = r.thumbnail ? `/api/fleet/${encodeURIComponent(r.relay)}/thumbnail.jpg?n=${r.thumbnail}` : null;
  if (src && img.getAttribute("src") !== src) img.src = src;
  return img;
}

function tile(r) {
  const online = r.availability === "online";
  const worst = r.worst_tier;
  return el("article", { class: "card tile", "data-relay": r.relay },
    el("div", { class: "head" }, el("span", { class: "name" }, r.relay),
       el("span", { class: `status ${online ? "pushing" : "offline"}`, "data-status": r.availability }, label("status", r.availability))),
    el("div", { class: "picture" }, picture(r)),
    el("div", {}, el("span", { class: "label" }, t("fleet.on_air") + " "), el("b", { class: "fleet-on-air" }, r.active_input || t("dash.nothing"))),
    el("div", { class: "chips" },
       el("span", { class: "chip " + (worst ? `tier-${worst}` : "clear") }, worst ? t("common.worst_fault", { tier: worst }) : t("common.no_open_fault")),
       r.mode ? el("span", { class: "chip" }, t("dash.chip_mode", { mode: label("value", r.mode) })) : null),
    el("div", { class: "muted" }, Object.entries(r.inputs || {}).map(([i, s]) => `${i} ${label("status", s)}`).join(" · ")),
    el("div", { class: "muted" }, Object.entries(r.outputs || {}).map(([o, s]) => `${o} ${label("status", s)}`).join(" · ")),
    r.dashboard ? el("a", { href: r.dashboard }, t("fleet.open_dashboard")) : el("span", { class: "muted" }, t("fleet.no_dashboard")));
}

async function refresh() {
  const link = document.getElementById("link");
  try {
    const r = await fetch("/api/fleet", { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=/fleet"; return; }
    const body = await r.json();
    const b = document.getElementById("broker");
    b.textContent = body.connected ? t("fleet.broker_connected") : t("fleet.broker_disconnected");
    b.className = "pill " + (body.connected ? "on" : "off");
    document.getElementById("fleet").replaceChildren(...body.relays.map(tile));
    link.textContent = t("common.live"); link.className = "pill on";
  } catch (e) {
    link.textContent = t("common.reconnecting"); link.className = "pill off";
  }
}

document.addEventListener("DOMContentLoaded", () => { refresh(); setInterval(refresh, 2000); });
