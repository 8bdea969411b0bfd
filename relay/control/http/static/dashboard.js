// Relay's dashboard: one page fed by Server-Sent Events (/api/live). No framework, no
// network beyond this relay. The buttons come from the command registry (hello.commands):
// a command the page does not place itself still gets a form under "More commands".
"use strict";

const $ = (sel) => document.querySelector(sel);
const S = { hello: null, state: {}, health: {}, history: [], commands: {}, csrf: null, thumbs: {} };
const HISTORY = 300;
const FIGURES = [["fps", "dash.fig_fps", 1], ["bitrate_kbps", "dash.fig_kbps", 0], ["drift_ms", "dash.fig_drift_ms", 0],
                 ["loudness_dbfs", "dash.fig_dbfs", 1], ["luma", "dash.fig_luma", 2]];

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
  return d.toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function ago(iso) {
  if (!iso) return "";
  let s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  s %= 60;
  return h ? t("common.ago_h", { h, m }) : m ? t("common.ago_m", { m, s }) : t("common.ago_s", { s });
}

function sinceText(iso) {
  return t("dash.since", { time: clock(iso), ago: ago(iso) });
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
  // Issue 21: failover and switch cut at once (bridged until the target's keyframe) unless
  // the request says "at": "keyframe"; failback and drill always wait for the keyframe.
  const when = args.at === "keyframe" ? t("dash.cut_keyframe") : t("dash.cut_now");
  switch (name) {
    case "failover": return t("dash.confirm_when", { text: args.to ? t("dash.confirm_failover_to", { to: args.to })
                                                                   : t("dash.confirm_failover"), when });
    case "failback": return t("dash.confirm_when", { text: t("dash.confirm_failback"), when: t("dash.cut_keyframe") });
    case "switch": return t("dash.confirm_when", { text: t("dash.confirm_switch", { to: args.to }), when });
    case "drill": return t("dash.confirm_when", { text: args.to ? t("dash.confirm_drill_to", { to: args.to, seconds: args.seconds })
                                                                : t("dash.confirm_drill", { seconds: args.seconds }),
                                                  when: t("dash.cut_keyframe") });
    case "output": return t("dash.confirm_output", { output: args.output, index: args.url_index });
    default: return t("dash.confirm_other", { name, args: JSON.stringify(args) });
  }
}

async function send(name, args = {}) {
  const spec = S.commands[name];
  if (!spec) { toast(t("dash.no_such_command", { name }), "error"); return null; }
  if (!spec.allowed) { toast(t("dash.needs_role", { name, role: spec.role }), "error"); return null; }
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
    toast(t("dash.no_answer", { name, error: String(e) }), "error");
    return null;
  } finally {
    if (running) clearInterval(running);
    if (name === "check") S.check = null;
  }
  if (name === "check" && reply.status === "ok") renderChecklist({ ...reply.data, ts: new Date().toISOString() });
  const ms = Math.round(performance.now() - started);
  if (reply.status === "ok") toast(t("dash.done", { name, ms }), "ok");
  else toast(`${name}: ${reply.error}`, "error");
  return reply;
}

// What a command does, in the page's language (the registry's own summary is English).
function summary(spec) {
  const text = label("command", spec.name);
  return text === spec.name ? spec.summary : text;
}

function button(name, text, args, cls) {
  const spec = S.commands[name];
  if (!spec) return null;
  const b = el("button", { class: cls || (spec.on_air ? "danger" : "secondary"), "data-command": name,
                           title: summary(spec), onclick: () => send(name, typeof args === "function" ? args() : args) },
               text);
  if (!spec.allowed) { b.disabled = true; b.title = t("dash.summary_needs_role", { summary: summary(spec), role: label("role", spec.role) }); }
  return b;
}

const PLACED = new Set(["failover", "failback", "switch", "mode", "failback_policy", "drill", "output", "check", "ping"]);

function renderActions() {
  const st = S.state;
  const a = $("#actions");
  a.replaceChildren(...[
    button("failover", t("dash.btn_failover")),
    button("failback", t("dash.btn_failback")),
    button("mode", st.mode === "manual" ? t("dash.btn_mode_to_auto") : t("dash.btn_mode_to_manual"),
           () => ({ mode: S.state.mode === "manual" ? "auto" : "manual" })),
    button("failback_policy", st.failback === "manual" ? t("dash.btn_failback_to_auto") : t("dash.btn_failback_to_manual"),
           () => ({ policy: S.state.failback === "manual" ? "auto" : "manual" })),
    button("drill", t("dash.btn_drill", { seconds: 10 }), { seconds: 10 }),
  ].filter(Boolean));
  $("#check-actions").replaceChildren(...[button("check", t("dash.btn_check"), {}, "secondary")].filter(Boolean));
  const more = $("#more-commands");
  more.replaceChildren(...Object.values(S.commands).filter((c) => !PLACED.has(c.name) || c.name === "ping")
    .map(commandForm));
  if (!more.children.length) more.append(el("span", { class: "muted" }, t("common.none")));
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
                              title: summary(spec) }, spec.name));
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
  title.textContent = t("dash.sparkline_title", { n: values.length, lo: lo.toFixed(1), hi: hi.toFixed(1) });
  svg.append(title);
  svg.append(line);
  return svg;
}

const IMAGES = {};  // one <img> per input, kept across redraws: a redraw never reloads a picture

function inputImage(id) {
  let img = IMAGES[id];
  if (!img) img = IMAGES[id] = el("img", { alt: t("dash.picture_of", { id }), "data-seq": "0" });
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
  document.title = t("dash.page_title", { relay: st.relay || "", input: st.active_input || t("dash.nothing") });
  const active = $("#active-input");
  active.textContent = st.active_input || t("dash.nothing_yet");
  active.className = "on-air-name" + (st.active_input === "slate" ? " slate" : "");
  $("#since").textContent = st.since ? sinceText(st.since) : "";
  $("#mode").textContent = t("dash.chip_mode", { mode: label("value", st.mode || "?") });
  $("#failback").textContent = t("dash.chip_failback", { policy: label("value", st.failback || "?") });
  const worst = st.worst_tier;
  const w = $("#worst");
  w.textContent = worst ? t("common.worst_fault", { tier: worst }) : t("common.no_open_fault");
  w.className = "chip " + (worst ? `tier-${worst}` : "clear");
  const drill = st.drill;
  $("#drill").textContent = drill ? t("dash.drill_until", { to: drill.to, until: clock(drill.until) }) : "";
  const url = thumbUrl("on_air");
  const pic = $("#on-air-picture");
  if (url && pic.getAttribute("src") !== url) pic.src = url;
}

const CODECS = { h264: "H.264", hevc: "HEVC", av1: "AV1", aac: "AAC" };

function formatText(f) {
  // What the encoder sends: "HEVC Main 4.1 · 1280x720 · 30 fps · AAC 48 kHz 2 ch".
  if (!f || !f.codec) return t("dash.format_unknown");
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
      el("span", { class: `chip tier-${f.tier}` }, t("common.tier", { tier: f.tier })), " ",
      el("b", { title: f.signal, "data-signal": f.signal }, label("signal", f.signal)),
      f.since ? " " + t("dash.since_clock", { time: clock(f.since) }) : "", f.value !== null && f.value !== undefined ? ` (${f.value})` : ""));
    const srt = typeof h.srt_rtt_ms === "number"
      ? el("div", { class: "muted" }, t("dash.srt_line", { rtt: num(h.srt_rtt_ms, 0), loss: num(h.srt_loss_pct, 1) })) : null;
    return el("article", { class: `card tile${id === S.state.active_input ? " on-air-tile" : ""}`, "data-input": id },
      el("div", { class: "head" }, el("span", { class: "name" }, id),
         el("span", { class: `status ${st.status}`, "data-status": st.status }, label("status", st.status))),
      el("div", { class: "picture" }, inputImage(id)),
      el("div", { class: "muted" }, t("dash.input_line", { kind: st.kind, priority: st.priority })
         + (st.connected ? "" : " · " + t("dash.not_connected"))),
      el("div", { class: "muted format", "data-format": (st.format && st.format.codec) || "" }, formatText(st.format)),
      el("div", { class: "figures" }, FIGURES.map(([k, label, d]) => el("div", { class: "figure", "data-figure": k },
        el("span", { class: "k" }, t(label)), el("span", { class: "v" }, num(h[k], d)), sparkline(hist.map((x) => x[k]))))),
      soundMeters(h),
      srt,
      el("ul", { class: "faults", "data-empty": t("common.no_open_fault") }, faults),
      id !== S.state.active_input ? el("div", { class: "actions" }, button("switch", t("dash.btn_put_on_air", { id }), { to: id })) : null);
  }));
}

function renderOutputs() {
  const outputs = S.state.outputs || {};
  const health = S.health.outputs || {};
  $("#outputs").replaceChildren(...Object.entries(outputs).map(([id, o]) => {
    const h = health[id] || {};
    const count = h.urls || (o.urls ? o.urls.length : 0);
    const others = [];
    for (let i = 0; i < count; i++) if (i !== o.url_index) others.push(button("output", t("dash.btn_use_url", { index: i }), { output: id, url_index: i }, "secondary"));
    return el("article", { class: "card tile", "data-output": id },
      el("div", { class: "head" }, el("span", { class: "name" }, id), el("span", { class: `status ${o.status}`, "data-status": o.status }, label("status", o.status))),
      el("div", {}, t("dash.ingest_url", { index: o.url_index })), el("div", { class: "url" }, o.url || ""),
      el("div", { class: "muted" }, t("dash.video_tags", { tags: o.video_tags || "legacy" })),
      o.cannot_carry ? el("div", { class: "faults cannot-carry" }, el("span", { class: "chip tier-1" }, t("common.tier", { tier: 1 })), " ", o.cannot_carry) : null,
      el("div", { class: "figures" },
        el("div", { class: "figure" }, el("span", { class: "k" }, t("dash.fig_kbps")), el("span", { class: "v" }, num(h.bitrate_kbps, 0))),
        el("div", { class: "figure" }, el("span", { class: "k" }, t("dash.fig_reconnects")), el("span", { class: "v" }, h.reconnects ?? "—")),
        el("div", { class: "figure" }, el("span", { class: "k" }, t("dash.fig_queue_ms")), el("span", { class: "v" }, h.queue_ms ?? "—"))),
      others.length ? el("div", { class: "actions" }, others.filter(Boolean)) : null);
  }));
}

function renderHost() {
  const h = S.health.host || {}, mqtt = S.health.mqtt;
  $("#host").replaceChildren(
    ...[["dash.fig_cpu", h.cpu_pct, 0], ["dash.fig_mem_free", h.mem_free_pct, 0], ["dash.fig_disk_free", h.disk_free_gb, 1],
        ["dash.fig_uptime", typeof S.health.uptime_s === "number" ? S.health.uptime_s / 60 : null, 0]]
      .map(([k, v, d]) => el("div", { class: "figure" }, el("span", { class: "k" }, t(k)), el("span", { class: "v" }, num(v, d)))),
    ...recordingFigure(S.health.recording));
  const m = $("#mqtt");
  if (!mqtt || mqtt.enabled === false) { m.textContent = t("dash.mqtt_off"); m.className = "pill"; }
  else { m.textContent = mqtt.connected ? t("dash.mqtt_connected") : t("dash.mqtt_disconnected"); m.className = "pill " + (mqtt.connected ? "on" : "off"); }
}

// The show's recording on this PC ([recording] path), when it is kept: on / waiting / failing,
// the segment or the error as its title.
function recordingFigure(r) {
  if (!r) return [];
  const word = r.status === "failing" ? "dash.rec_failing" : r.status === "recording" ? "dash.rec_on" : "dash.rec_waiting";
  return [el("div", { class: "figure", id: "recording", title: r.error || r.segment || "" },
    el("span", { class: "k" }, t("dash.fig_recording")), el("span", { class: `v rec-${r.status}` }, t(word)))];
}

function eventText(e) {
  const skip = new Set(["seq", "event", "ts", "relay"]);
  if (e.event === "switched") return `${e.from || t("dash.nothing")} → ${e.to} (${label("reason", e.reason)})` + (e.gap_ms != null ? t("dash.ev_gap", { ms: Math.round(e.gap_ms) }) : "");
  if (e.event === "fault_raised" || e.event === "fault_cleared")
    return `${e.input || e.output || t("dash.host")}: ${label("signal", e.signal)} ${t("common.tier", { tier: e.tier })}` + (e.value != null ? ` (${e.value})` : "");
  // the configuration's keys, as config-check and the file name them
  if (e.event === "config_reloaded") return (e.changed || []).join(", ") || "—";
  if (e.event === "config_reload_refused") return (e.keys && e.keys.length ? e.keys : e.problems || []).join("; ") || e.reason || "";
  if (e.event === "command") return `${e.command} ${JSON.stringify(e.args || {})} → ${label("value", e.status)}${e.error ? ` (${e.error})` : ""} · ${t("dash.ev_by", { source: e.source || "?" })}`;
  return Object.entries(e).filter(([k, v]) => !skip.has(k) && v !== null && typeof v !== "object").map(([k, v]) => `${k} ${v}`).join(" · ");
}

// A switch or a fault, while the show is recorded on this PC: its time opens the recording at
// that moment (/recordings/at redirects to the segment with #t=seconds).
const RECORDED_MOMENTS = new Set(["switched", "switch_failed", "fault_raised"]);

function eventTime(e) {
  if (!RECORDED_MOMENTS.has(e.event) || !(S.health && S.health.recording)) return clock(e.ts);
  return el("a", { class: "recording", href: `/recordings/at?ts=${encodeURIComponent(e.ts)}`, target: "_blank", rel: "noopener" }, clock(e.ts));
}

function addEvent(e, atTop = true) {
  const list = $("#events");
  const li = el("li", { class: `ev-${e.event}${e.tier ? ` tier-${e.tier}` : ""}`, "data-seq": e.seq },
    el("span", { class: "t" }, eventTime(e)), el("span", { class: "n", title: e.event }, label("event", e.event)), el("span", { class: "d" }, eventText(e)));
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
    `${c.result === "pass" ? "✓" : c.result === "warn" ? "!" : "✗"} ${label("check", c.name || "")}: ${c.detail || ""}`);
}

function renderRunningCheck() {
  if (!S.check) return;
  const box = $("#checklist");
  box.className = "checklist";
  const secs = Math.round((performance.now() - S.check.started) / 1000);
  box.replaceChildren(el("div", { class: "running" }, t("dash.check_running", { secs, step: S.check.step })),
    ...S.check.items.map(checkLine));
}

function renderChecklist(result) {
  S.check = null;
  const box = $("#checklist");
  box.className = "checklist";
  box.replaceChildren(el("div", { class: result.result }, t("dash.check_result", { result: label("value", result.result), time: clock(result.ts) })),
    ...(result.checks || []).map(checkLine));
}

async function loadReports() {
  try {
    const r = await fetch("/api/reports", { credentials: "same-origin" });
    const body = await r.json();
    const items = (body.sessions || []).slice(0, 20).map((s, i) => el("li", {},
      el("a", { href: s.url, target: "_blank", rel: "noopener" }, new Date(s.started * 1000).toLocaleString(LANG)),
      i === 0 && !s.stopped ? " " + t("dash.this_session") : s.stop_reason ? ` · ${label("stop", s.stop_reason)}` : ""));
    $("#report-list").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, t("dash.no_session"))]));
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
    $("#user").textContent = `${h.user} (${label("role", h.role)})`;
    $("#events").replaceChildren();
    (h.events || []).forEach((e) => addEvent(e));
    link.textContent = t("common.live"); link.className = "pill on";
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
    link.textContent = t("common.reconnecting"); link.className = "pill off";
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("#logout").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const logout = () => fetch("/logout", { method: "POST", credentials: "same-origin", redirect: "manual",
                                           headers: { "X-CSRF-Token": S.csrf || "" } });
    let r = await logout().catch(() => null);
    if (r && r.status === 403) {  // no token yet, or a stale one: fetch this session's and try once more
      const me = await fetch("/api/me", { credentials: "same-origin" }).then((x) => (x.ok ? x.json() : null), () => null);
      if (me && me.csrf) { S.csrf = me.csrf; r = await logout().catch(() => null); }
    }
    // ended (the 303 to /login) or no session left to end: only then say so; else the login is still valid
    if (r && (r.type === "opaqueredirect" || r.ok || r.status === 401)) location.href = "/login";
    else toast(t("dash.no_answer", { name: "logout", error: r ? String(r.status) : "network" }), "error");
  });
  connect();
  setInterval(() => { if (S.state.since) $("#since").textContent = sinceText(S.state.since); }, 1000);
});
