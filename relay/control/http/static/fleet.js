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
  if (!img) img = IMAGES[r.relay] = el("img", { alt: `what ${r.relay} has on air` });
  const src = r.thumbnail ? `/api/fleet/${encodeURIComponent(r.relay)}/thumbnail.jpg?n=${r.thumbnail}` : null;
  if (src && img.getAttribute("src") !== src) img.src = src;
  return img;
}

function tile(r) {
  const online = r.availability === "online";
  const worst = r.worst_tier;
  return el("article", { class: "card tile", "data-relay": r.relay },
    el("div", { class: "head" }, el("span", { class: "name" }, r.relay),
       el("span", { class: `status ${online ? "pushing" : "offline"}` }, r.availability)),
    el("div", { class: "picture" }, picture(r)),
    el("div", {}, el("span", { class: "label" }, "on air "), el("b", { class: "fleet-on-air" }, r.active_input || "nothing")),
    el("div", { class: "chips" },
       el("span", { class: "chip " + (worst ? `tier-${worst}` : "clear") }, worst ? `worst open fault: tier ${worst}` : "no open fault"),
       r.mode ? el("span", { class: "chip" }, `mode ${r.mode}`) : null),
    el("div", { class: "muted" }, Object.entries(r.inputs || {}).map(([i, s]) => `${i} ${s}`).join(" · ")),
    el("div", { class: "muted" }, Object.entries(r.outputs || {}).map(([o, s]) => `${o} ${s}`).join(" · ")),
    r.dashboard ? el("a", { href: r.dashboard }, "open its dashboard") : el("span", { class: "muted" }, "no dashboard"));
}

async function refresh() {
  const link = document.getElementById("link");
  try {
    const r = await fetch("/api/fleet", { credentials: "same-origin" });
    if (r.status === 401) { location.href = "/login?next=/fleet"; return; }
    const body = await r.json();
    const b = document.getElementById("broker");
    b.textContent = body.connected ? "broker connected" : "broker disconnected";
    b.className = "pill " + (body.connected ? "on" : "off");
    document.getElementById("fleet").replaceChildren(...body.relays.map(tile));
    link.textContent = "live"; link.className = "pill on";
  } catch (e) {
    link.textContent = "reconnecting…"; link.className = "pill off";
  }
}

document.addEventListener("DOMContentLoaded", () => { refresh(); setInterval(refresh, 2000); });
