// Relay's dashboard: one page fed by Server-Sent Events (/api/live). No framework, no
// network beyond this relay. The buttons come from the command registry (hello.commands):
// a command the page does not place itself still gets a form under "More commands".
"use strict";

const $ = (sel) => document.querySelector(sel);
const S = { hello: null, state: {}, health: {}, history: [], commands: {}, csrf: null, thumbs: {} };
const HISTORY = 300;
const FIGURES = [["fps", "fps", 1], ["bitrate_kbps", "kbit/s", 0], ["drift_ms", "drift ms", 0],
                 ["loudness_dbfs", "dBFS", 1], ["luma", "luma", 2]];

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
  return e;
}

function clock(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function ago(iso) {
  if (!iso) return "";
  let s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  s %= 60;
  return h ? `${h} h ${m} min` : m ? `${m} min ${s} s` : `${s} s`;
}

function num(v, digits) {
  return typeof v === "number" ? v.toFixed(digits) : "—";
}

function toast(text, kind) {
  const t = $("#toast");
  t.textContent = text;
  t.className = "toast " + (kind || "");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 6000);
}

function confirmDialog(text) {
  const dlg = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.returnValue = "";
    dlg.showModal();
  });
}

// -- commands -------------------------------------------------------------------------------

function describeCommand(name, args) {
  const to = args.to ? ` to ${args.to}` : "";
  switch (name) {
    case "failover": return `Fail over${to || " to the best healthy backup"}? This changes what is on air now.`;
    case "failback": return "Fail back to the most preferred healthy input? This changes what is on air now.";
    case "switch": return `Put ${args.to} on air now?`;
    case "drill": return `Drill${to || " the best healthy backup"} for ${args.seconds} s? It goes on air, then back.`;
    case "output": return `Move output ${args.output} to ingest URL #${args.url_index}?`;
    default: return `Send ${name} ${JSON.stringify(args)}?`;
  }
}

async function send(name, args = {}) {
  const spec = S.commands[name];
  if (!spec) { toast(`${name}: this relay has no such command`, "error"); return null; }
  if (!spec.allowed) { toast(`${name}: needs the ${spec.role} role`, "error"); return null; }
  if (spec.on_air && !(await confirmDialog(describeCommand(name, args)))) return null;
  const started = performance.now();
  let running = null;
  if (name === "check") {
    // The check watches every input for its sample window: its lines come in as they are judged.
    startCheck();
    running = setInterval(renderRunningCheck, 1000);
  }
  let reply;
  try {
    const r = await fetch(`/api/commands/${name}`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": S.csrf || "" },
      body: JSON.stringify(args),
    });
    reply = await r.json();
  } catch (e) {
    toast(`${name}: no answer (${e})`, "error");
    return null;
  } finally {
    if (running) clearInterval(running);
    if (name === "check") S.check = null;
  }
  if (name === "check" && reply.status === "ok") renderChecklist({ ...reply.data, ts: new Date().toISOString() });
  const ms = Math.round(performance.now() - started);
  if (reply.status === "ok") toast(`${name}: done (${ms} ms)`, "ok");
  else toast(`${name}: ${reply.error}`, "error");
  return reply;
}

function button(name, text, args, cls) {
  const spec = S.commands[name];
  if (!spec) return null;
  const b = el("button", { class: cls || (spec.on_air ? "danger" : "secondary"), "data-command": name,
                           title: spec.summary, onclick: () => send(name, typeof args === "function" ? args() : args) },
               text);
  if (!spec.allowed) { b.disabled = true; b.title = `${spec.summary} (needs the ${spec.role} role)`; }
  return b;
}

const PLACED = new Set(["failover", "failback", "switch", "mode", "failback_policy", "drill", "output", "check", "ping"]);

function renderActions() {
  const st = S.state;
  const a = $("#actions");
  a.replaceChildren(...[
    button("failover", "Failover"),
    button("failback", "Failback"),
    button("mode", st.mode === "manual" ? "Mode: manual → auto" : "Mode: auto → manual",
           () => ({ mode: S.state.mode === "manual" ? "auto" : "manual" })),
    button("failback_policy", st.failback === "manual" ? "Failback: manual → auto" : "Failback: auto → manual",
           () => ({ policy: S.state.failback === "manual" ? "auto" : "manual" })),
    button("drill", "Drill backup 10 s", { seconds: 10 }),
  ].filter(Boolean));
  $("#check-actions").replaceChildren(...[button("check", "Run pre-show check", {}, "secondary")].filter(Boolean));
  const more = $("#more-commands");
  more.replaceChildren(...Object.values(S.commands).filter((c) => !PLACED.has(c.name) || c.name === "ping")
    .map(commandForm));
  if (!more.children.length) more.append(el("span", { class: "muted" }, "none"));
}

function commandForm(spec) {
  // A form from the command's JSON schema: how a new command reaches the page with no edit here.
  const props = (spec.schema && spec.schema.properties) || {};
  const fields = [];
  for (const [key, p] of Object.entries(props)) {
    if (key === "transaction") continue;
    const t = p.type || (p.anyOf && p.anyOf.map((x) => x.type).find((x) => x !== "null"));
    const choices = p.enum || (p.anyOf && p.anyOf.flatMap((x) => x.enum || []));
    let input;
    if (choices && choices.length) input = el("select", { name: key }, choices.map((c) => el("option", {}, c)));
    else if (t === "boolean") input = el("input", { name: key, type: "checkbox" });
    else input = el("input", { name: key, placeholder: key, type: t === "number" || t === "integer" ? "number" : "text",
                                step: t === "number" ? "any" : null });
    input.dataset.type = t || "string";
    fields.push(el("label", { title: p.description || key }, input));
  }
  const form = el("form", { "data-command": spec.name, onsubmit: (ev) => {
    ev.preventDefault();
    const args = {};
    for (const input of form.querySelectorAll("input, select")) {
      if (input.type === "checkbox") { if (input.checked) args[input.name] = true; continue; }
      if (input.value === "") continue;
      args[input.name] = input.dataset.type === "integer" ? parseInt(input.value, 10)
        : input.dataset.type === "number" ? parseFloat(input.value) : input.value;
    }
    send(spec.name, args);
  } }, fields, el("button", { type: "submit", class: spec.on_air ? "danger" : "secondary", disabled: !spec.allowed,
                              title: spec.summary }, spec.name));
  return form;
}

// -- drawing ------------------------------------------------------------------------------------

function sparkline(values) {
  const pts = values.map((v, i) => [i, v]).filter(([, v]) => typeof v === "number");
  // The line spans the width with what history there is (a page opened a minute ago
  // draws that minute across the tile); the title says how far back it goes.
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  const width = Math.max(values.length - 1, 1);
  svg.setAttribute("viewBox", `0 0 ${width} 20`);
  svg.setAttribute("preserveAspectRatio", "none");
  if (pts.length < 2) return svg;
  let lo = Math.min(...pts.map((p) => p[1])), hi = Math.max(...pts.map((p) => p[1]));
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", pts.map(([i, v]) => `${i},${(19 - ((v - lo) / (hi - lo)) * 18).toFixed(1)}`).join(" "));
  const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
  title.textContent = `last ${values.length} s: ${lo.toFixed(1)} to ${hi.toFixed(1)}`;
  svg.append(title);
  svg.append(line);
  return svg;
}

const IMAGES = {};  // one <img> per input, kept across redraws: a redraw never reloads a picture

function inputImage(id) {
  let img = IMAGES[id];
  if (!img) img = IMAGES[id] = el("img", { alt: `picture of ${id}`, "data-seq": "0" });
  const seq = String(S.thumbs[id] || 0);
  if (S.thumbs[id] && img.dataset.seq !== seq) { img.src = thumbUrl(id); img.dataset.seq = seq; }
  return img;
}

function thumbUrl(key) {
  const n = S.thumbs[key];
  return n ? `/api/thumbnails/${encodeURIComponent(key)}.jpg?n=${n}` : null;
}

function renderOnAir() {
  const st = S.state;
  $("#relay-id").textContent = st.relay || (S.hello && S.hello.relay) || "relay";
  document.title = `Relay ${st.relay || ""}: ${st.active_input || "nothing"} on air`;
  const active = $("#active-input");
  active.textContent = st.active_input || "nothing yet";
  active.className = "on-air-name" + (st.active_input === "slate" ? " slate" : "");
  $("#since").textContent = st.since ? `since ${clock(st.since)} (${ago(st.since)})` : "";
  $("#mode").textContent = `mode ${st.mode || "?"}`;
  $("#failback").textContent = `failback ${st.failback || "?"}`;
  const worst = st.worst_tier;
  const w = $("#worst");
  w.textContent = worst ? `worst open fault: tier ${worst}` : "no open fault";
  w.className = "chip " + (worst ? `tier-${worst}` : "clear");
  const drill = st.drill;
  $("#drill").textContent = drill ? `drill of ${drill.to} until ${clock(drill.until)}` : "";
  const url = thumbUrl("on_air");
  const pic = $("#on-air-picture");
  if (url && pic.getAttribute("src") !== url) pic.src = url;
}

const CODECS = { h264: "H.264", hevc: "HEVC", av1: "AV1", aac: "AAC" };

function formatText(f) {
  // What the encoder sends: "HEVC Main 4.1 · 1280x720 · 30 fps · AAC 48 kHz 2 ch".
  if (!f || !f.codec) return "format not known yet";
  const parts = [[CODECS[f.codec] || f.codec, f.profile, f.level].filter(Boolean).join(" ")];
  if (f.width && f.height) parts.push(`${f.width}x${f.height}`);
  if (f.fps) parts.push(`${num(f.fps, 2).replace(/\.?0+$/, "")} fps`);
  if (f.audio_codec) parts.push(`${CODECS[f.audio_codec] || f.audio_codec} ${f.sample_rate ? num(f.sample_rate / 1000, 1).replace(/\.0$/, "") + " kHz" : ""} ${f.channels ? f.channels + " ch" : ""}`.trim());
  return parts.join(" · ");
}

function renderInputs() {
  const inputs = S.state.inputs || {};
  const health = S.health.inputs || {};
  const box = $("#inputs");
  const ids = Object.keys(inputs).sort((a, b) => (inputs[a].priority || 0) - (inputs[b].priority || 0));
  box.replaceChildren(...ids.map((id) => {
    const st = inputs[id], h = health[id] || {};
    const hist = S.history.map((s) => (s.inputs && s.inputs[id]) || {});
    const faults = (st.faults || []).map((f) => el("li", {},
      el("span", { class: `chip tier-${f.tier}` }, `tier ${f.tier}`), " ", el("b", {}, f.signal),
      f.since ? ` since ${clock(f.since)}` : "", f.value !== null && f.value !== undefined ? ` (${f.value})` : ""));
    const srt = typeof h.srt_rtt_ms === "number"
      ? el("div", { class: "muted" }, `SRT: RTT ${num(h.srt_rtt_ms, 0)} ms, loss ${num(h.srt_loss_pct, 1)} %`) : null;
    return el("article", { class: `card tile${id === S.state.active_input ? " on-air-tile" : ""}`, "data-input": id },
      el("div", { class: "head" }, el("span", { class: "name" }, id),
         el("span", { class: `status ${st.status}` }, st.status)),
      el("div", { class: "picture" }, inputImage(id)),
      el("div", { class: "muted" }, `${st.kind} · priority ${st.priority}${st.connected ? "" : " · not connected"}`),
      el("div", { class: "muted format", "data-format": (st.format && st.format.codec) || "" }, formatText(st.format)),
      el("div", { class: "figures" }, FIGURES.map(([k, label, d]) => el("div", { class: "figure", "data-figure": k },
        el("span", { class: "k" }, label), el("span", { class: "v" }, num(h[k], d)), sparkline(hist.map((x) => x[k]))))),
      srt,
      el("ul", { class: "faults" }, faults),
      id !== S.state.active_input ? el("div", { class: "actions" }, button("switch", `Put ${id} on air`, { to: id })) : null);
  }));
}

function renderOutputs() {
  const outputs = S.state.outputs || {};
  const health = S.health.outputs || {};
  $("#outputs").replaceChildren(...Object.entries(outputs).map(([id, o]) => {
    const h = health[id] || {};
    const count = h.urls || (o.urls ? o.urls.length : 0);
    const others = [];
    for (let i = 0; i < count; i++) if (i !== o.url_index) others.push(button("output", `Use URL #${i}`, { output: id, url_index: i }, "secondary"));
    return el("article", { class: "card tile", "data-output": id },
      el("div", { class: "head" }, el("span", { class: "name" }, id), el("span", { class: `status ${o.status}` }, o.status)),
      el("div", {}, `ingest URL #${o.url_index}`), el("div", { class: "url" }, o.url || ""),
      el("div", { class: "muted" }, `video tags: ${o.video_tags || "legacy"}`),
      o.cannot_carry ? el("div", { class: "faults cannot-carry" }, el("span", { class: "chip tier-1" }, "tier 1"), " ", o.cannot_carry) : null,
      el("div", { class: "figures" },
        el("div", { class: "figure" }, el("span", { class: "k" }, "kbit/s"), el("span", { class: "v" }, num(h.bitrate_kbps, 0))),
        el("div", { class: "figure" }, el("span", { class: "k" }, "reconnects"), el("span", { class: "v" }, h.reconnects ?? "—")),
        el("div", { class: "figure" }, el("span", { class: "k" }, "queue ms"), el("span", { class: "v" }, h.queue_ms ?? "—"))),
      others.length ? el("div", { class: "actions" }, others.filter(Boolean)) : null);
  }));
}

function renderHost() {
  const h = S.health.host || {}, mqtt = S.health.mqtt;
  $("#host").replaceChildren(
    ...[["CPU %", h.cpu_pct, 0], ["memory free %", h.mem_free_pct, 0], ["disk free GB", h.disk_free_gb, 1],
        ["uptime min", typeof S.health.uptime_s === "number" ? S.health.uptime_s / 60 : null, 0]]
      .map(([k, v, d]) => el("div", { class: "figure" }, el("span", { class: "k" }, k), el("span", { class: "v" }, num(v, d)))));
  const m = $("#mqtt");
  if (!mqtt || mqtt.enabled === false) { m.textContent = "MQTT off"; m.className = "pill"; }
  else { m.textContent = mqtt.connected ? "MQTT connected" : "MQTT disconnected"; m.className = "pill " + (mqtt.connected ? "on" : "off"); }
}

function eventText(e) {
  const skip = new Set(["seq", "event", "ts", "relay"]);
  if (e.event === "switched") return `${e.from || "nothing"} → ${e.to} (${e.reason})` + (e.gap_ms != null ? `, gap ${Math.round(e.gap_ms)} ms` : "");
  if (e.event === "fault_raised" || e.event === "fault_cleared")
    return `${e.input || e.output || "host"}: ${e.signal} tier ${e.tier}` + (e.value != null ? ` (${e.value})` : "");
  if (e.event === "command") return `${e.command} ${JSON.stringify(e.args || {})} → ${e.status}${e.error ? ` (${e.error})` : ""} · by ${e.source || "?"}`;
  return Object.entries(e).filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== "object").map(([k, v]) => `${k} ${v}`).join(" · ");
}

function addEvent(e, atTop = true) {
  const list = $("#events");
  const li = el("li", { class: `ev-${e.event}${e.tier ? ` tier-${e.tier}` : ""}`, "data-seq": e.seq },
    el("span", { class: "t" }, clock(e.ts)), el("span", { class: "n" }, e.event), el("span", { class: "d" }, eventText(e)));
  if (atTop) list.prepend(li); else list.append(li);
  while (list.children.length > 200) list.lastChild.remove();
  if (e.event === "preflight") renderChecklist(e);
}

// -- the pre-show check while it runs (lines from the relay as each is judged) ----------------

function startCheck() {
  S.check = { started: performance.now(), step: "starting", items: [] };
  renderRunningCheck();
}

function onCheckProgress(body) {
  if (!S.check) startCheck();  // started elsewhere (another page, MQTT): show it too
  if (body.step) S.check.step = body.step;
  if (body.item) S.check.items.push(body.item);
  renderRunningCheck();
}

function checkLine(c) {
  return el("div", { class: c.result || "" },
    `${c.result === "pass" ? "✓" : c.result === "warn" ? "!" : "✗"} ${c.name || ""}: ${c.detail || ""}`);
}

function renderRunningCheck() {
  if (!S.check) return;
  const box = $("#checklist");
  box.className = "checklist";
  const secs = Math.round((performance.now() - S.check.started) / 1000);
  box.replaceChildren(el("div", { class: "running" }, `running the pre-show check… ${secs} s: ${S.check.step}`),
    ...S.check.items.map(checkLine));
}

function renderChecklist(result) {
  S.check = null;
  const box = $("#checklist");
  box.className = "checklist";
  box.replaceChildren(el("div", { class: result.result }, `result: ${result.result} (${clock(result.ts)})`),
    ...(result.checks || []).map(checkLine));
}

async function loadReports() {
  try {
    const r = await fetch("/api/reports", { credentials: "same-origin" });
    const body = await r.json();
    const items = (body.sessions || []).slice(0, 20).map((s, i) => el("li", {},
      el("a", { href: s.url, target: "_blank", rel: "noopener" }, new Date(s.started * 1000).toLocaleString()),
      i === 0 && !s.stopped ? " (this session, so far)" : s.stop_reason ? ` · ${s.stop_reason}` : ""));
    $("#report-list").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "no session recorded")]));
  } catch (e) { /* the list is a convenience: the live page goes on */ }
}

function renderAll() {
  renderOnAir(); renderInputs(); renderOutputs(); renderHost(); renderActions();
}

// -- the live stream ---------------------------------------------------------------------------

function connect() {
  const link = $("#link");
  const source = new EventSource("/api/live");
  source.addEventListener("hello", (m) => {
    const h = JSON.parse(m.data);
    S.hello = h; S.csrf = h.csrf; S.state = h.state || {}; S.health = h.health || {};
    S.history = (h.history || []).slice(-HISTORY); S.thumbs = h.thumbnails || {};
    S.commands = Object.fromEntries((h.commands || []).map((c) => [c.name, c]));
    $("#user").textContent = `${h.user} (${h.role})`;
    $("#events").replaceChildren();
    (h.events || []).forEach((e) => addEvent(e));
    link.textContent = "live"; link.className = "pill on";
    renderAll();
    loadReports();
  });
  source.addEventListener("state", (m) => { S.state = JSON.parse(m.data); renderOnAir(); renderInputs(); renderOutputs(); renderActions(); });
  source.addEventListener("health", (m) => {
    S.health = JSON.parse(m.data);
    const sample = { inputs: {} };
    for (const [id, h] of Object.entries(S.health.inputs || {})) sample.inputs[id] = h;
    S.history.push(sample);
    if (S.history.length > HISTORY) S.history.shift();
    renderInputs(); renderOutputs(); renderHost(); renderOnAir();
    link.dataset.last = String(Date.now());
  });
  source.addEventListener("event", (m) => addEvent(JSON.parse(m.data)));
  source.addEventListener("check", (m) => onCheckProgress(JSON.parse(m.data)));
  source.addEventListener("thumbnails", (m) => {
    Object.assign(S.thumbs, JSON.parse(m.data));
    renderOnAir();
    for (const id of Object.keys(IMAGES)) inputImage(id);
  });
  source.onerror = () => {
    link.textContent = "reconnecting…"; link.className = "pill off";
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("#logout").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": S.csrf || "" } });
    location.href = "/login";
  });
  connect();
  setInterval(() => { if (S.state.since) $("#since").textContent = `since ${clock(S.state.since)} (${ago(S.state.since)})`; }, 1000);
});
