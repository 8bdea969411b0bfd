// The program preview: what is on air, moving. /api/preview (a WebSocket) sends a JSON text
// naming each init segment's codecs, then fragmented MP4 as binary messages, a fragment per
// packet, played here through Media Source Extensions; muted (browsers autoplay only
// that) until staff press the sound button. The player stays near the live edge and keeps
// only the last seconds buffered. And the inputs' audio level meters (soundMeters, drawn by
// dashboard.js in each input's tile from health's peak_dbfs and loudness_dbfs).
"use strict";

const PREVIEW = { ws: null, ms: null, sb: null, queue: [], mime: null, blocked: false };
const LIVE_EDGE_S = 0.3;  // where the player sits behind the newest picture it has
const MAX_BEHIND_S = 1.5;  // further behind than this (a tab in the background, a stall): jump ahead
const KEEP_S = 20;  // buffered seconds kept behind the playhead
const METER_FLOOR_DB = -60;

function previewNote(text) {
  const note = document.getElementById("preview-note");
  if (!note) return;
  note.textContent = text || "";
  note.hidden = !text;
}

function startPreview() {
  const video = document.getElementById("program");
  if (!video) return;
  if (!window.MediaSource) { previewNote(t("preview.no_mse")); return; }
  resetPreview(video);
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/preview`);
  ws.binaryType = "arraybuffer";
  PREVIEW.ws = ws;
  ws.onmessage = (m) => {
    if (typeof m.data === "string") { onInit(JSON.parse(m.data)); return; }
    if (!PREVIEW.blocked) { PREVIEW.queue.push(m.data); pump(); }
  };
  ws.onclose = () => {
    if (PREVIEW.ws !== ws) return;
    PREVIEW.ws = null;
    setTimeout(startPreview, 2000);  // a closed stream (too slow, the relay restarting): start afresh
  };
}

function resetPreview(video) {
  const ms = new MediaSource();
  Object.assign(PREVIEW, { ms, sb: null, queue: [], mime: null, blocked: false });
  video.classList.remove("playing");
  if (video.src) URL.revokeObjectURL(video.src);
  video.src = URL.createObjectURL(ms);
  ms.addEventListener("sourceopen", pump);
}

function onInit(msg) {
  if (!MediaSource.isTypeSupported(msg.init)) {
    // e.g. HEVC in a Chromium without its decoder: the thumbnail stays, and says why
    PREVIEW.blocked = true;
    document.getElementById("program").classList.remove("playing");
    document.getElementById("sound").hidden = true;
    previewNote(t("preview.cannot_play", { codec: CODECS[msg.codec] || msg.codec }));
    return;
  }
  PREVIEW.blocked = false;
  document.getElementById("sound").hidden = false;
  previewNote("");
  PREVIEW.queue.push({ mime: msg.init });
  pump();
}

function pump() {
  const ms = PREVIEW.ms;
  if (!ms || ms.readyState !== "open") return;
  while (PREVIEW.queue.length && !(PREVIEW.sb && PREVIEW.sb.updating)) {
    const item = PREVIEW.queue[0];
    if (item.mime) {
      PREVIEW.queue.shift();
      if (!PREVIEW.sb) {
        PREVIEW.sb = ms.addSourceBuffer(item.mime);
        PREVIEW.sb.addEventListener("updateend", pump);
      } else if (item.mime !== PREVIEW.mime) {
        PREVIEW.sb.changeType(item.mime);  // another codec on air: the next init segment says how
      }
      PREVIEW.mime = item.mime;
      continue;
    }
    if (!PREVIEW.sb) { PREVIEW.queue.shift(); continue; }
    // everything waiting up to the next init, in one append (a fragment is one packet)
    let n = 0, size = 0;
    while (n < PREVIEW.queue.length && !PREVIEW.queue[n].mime) size += PREVIEW.queue[n++].byteLength;
    const chunk = new Uint8Array(size);
    let at = 0;
    for (const piece of PREVIEW.queue.splice(0, n)) { chunk.set(new Uint8Array(piece), at); at += piece.byteLength; }
    try {
      PREVIEW.sb.appendBuffer(chunk);
    } catch (e) {
      if (PREVIEW.ws) PREVIEW.ws.close();  // the buffer is full or broken: start again from a keyframe
    }
    return;
  }
}

function followLiveEdge() {
  const video = document.getElementById("program");
  const sb = PREVIEW.sb;
  if (!video || !sb || PREVIEW.ms.readyState !== "open") return;
  if (PREVIEW.blocked) { video.pause(); video.classList.remove("playing"); return; }
  const ranges = video.buffered;
  if (!ranges.length) return;
  const start = ranges.start(ranges.length - 1), end = ranges.end(ranges.length - 1);
  const behind = end - video.currentTime;
  if (behind > MAX_BEHIND_S || video.currentTime < start) {
    video.currentTime = Math.max(start, end - LIVE_EDGE_S);
  }
  // a little behind (a stall, a burst from the network): catch up by playing 10 % faster
  video.playbackRate = behind > 2 * LIVE_EDGE_S && behind <= MAX_BEHIND_S ? 1.1 : 1.0;
  if (video.paused) video.play().catch(() => { /* autoplay refused: the button starts it */ });
  if (video.readyState >= 2) video.classList.add("playing");
  if (!sb.updating && video.currentTime - ranges.start(0) > KEEP_S) {
    sb.remove(ranges.start(0), video.currentTime - KEEP_S / 2);
  }
}

function toggleSound() {
  const video = document.getElementById("program");
  video.muted = !video.muted;
  if (!video.muted) video.play().catch(() => {});
  const button = document.getElementById("sound");
  button.textContent = video.muted ? t("preview.sound_on") : t("preview.sound_off");
  button.setAttribute("aria-pressed", String(!video.muted));
}

// -- audio level meters ---------------------------------------------------------------------------

function meter(kind, db) {
  const fill = el("span", { class: "fill" });
  const shown = typeof db === "number" ? Math.max(0, Math.min(1, (db - METER_FLOOR_DB) / -METER_FLOOR_DB)) : 0;
  fill.style.width = `${(shown * 100).toFixed(1)}%`;  // CSSOM, not a style attribute: the CSP allows it
  const zone = typeof db !== "number" ? "none" : db > -6 ? "hot" : db > -20 ? "loud" : "quiet";
  return el("div", { class: `meter ${zone}`, "data-meter": kind, "data-db": typeof db === "number" ? db : "" },
    el("span", { class: "k" }, t(`preview.meter_${kind}`)),
    el("span", { class: "bar" }, fill),
    el("span", { class: "v" }, typeof db === "number" ? num(db, 1) : "—"));
}

function soundMeters(h) {
  return el("div", { class: "meters", title: t("preview.meters_title") },
    meter("peak", h.peak_dbfs), meter("rms", h.loudness_dbfs));
}

document.addEventListener("DOMContentLoaded", () => {
  const button = document.getElementById("sound");
  if (button) button.addEventListener("click", toggleSound);
  startPreview();
  setInterval(followLiveEdge, 500);
});
