// soundseek search page: plain JS, no build step. Talks to /api/* (see service/app.py).
// Every search is a URL (?q=&k=&mode= or ?similar=ID&k=), pushed to the history, so Back and
// Forward walk earlier searches and a URL can be shared. Keys: "/" search box, j/k or
// arrows move between results, Enter or Space plays, "s" finds similar sounds.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null; // the URL search string of the results on screen

function showError(msg) {
  const el = $("error");
  el.textContent = msg;
  el.hidden = !msg;
}

function clearResults(status) {
  $("results").replaceChildren();
  $("status").textContent = status || "";
}

function fmtTime(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m + ":" + String(Math.floor(s % 60)).padStart(2, "0");
}

async function apiError(res) {
  try {
    const body = await res.json();
    const d = body.detail !== undefined ? body.detail : (body.error && (body.error.message || body.error));
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((x) => x.msg || JSON.stringify(x)).join("; ");
    if (d) return JSON.stringify(d);
  } catch (e) { /* not JSON */ }
  return "Request failed (HTTP " + res.status + ")";
}

function decodePeaks(b64) {
  if (!b64) return null;
  const raw = atob(b64);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

// Waveform thumbnail: one bar per stored peak, normalised to the loudest; the matching
// moment is shaded; a played position line is drawn by drawPosition.
function drawWave(canvas, peaks, hit, position) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 600, h = canvas.clientHeight || 48;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  const dur = hit.duration || 0;
  if (dur > 0 && hit.start !== null && hit.end !== null && (hit.start > 0 || hit.end < dur - 1e-3)) {
    ctx.fillStyle = "rgba(245, 166, 35, 0.28)";
    ctx.fillRect((hit.start / dur) * w, 0, ((hit.end - hit.start) / dur) * w, h);
  }
  if (peaks && peaks.length) {
    let max = 1;
    for (const p of peaks) max = Math.max(max, p);
    const bw = w / peaks.length;
    ctx.fillStyle = "#0b62c4";
    for (let i = 0; i < peaks.length; i++) {
      const ph = Math.max(1, (peaks[i] / max) * (h - 2));
      ctx.fillRect(i * bw, (h - ph) / 2, Math.max(1, bw - 0.5), ph);
    }
  }
  if (position !== undefined && dur > 0) {
    ctx.fillStyle = "#1d232a";
    ctx.fillRect((position / dur) * w, 0, 1.5, h);
  }
}

function whyText(h) {
  const why = h.why || {};
  const parts = [];
  if (why.matched && why.matched.length) parts.push("words: " + why.matched.join(", "));
  if (why.semantic !== null && why.semantic !== undefined) parts.push("sounds like it: " + why.semantic.toFixed(3));
  return parts.join(" · ");
}

function renderHits(hits, label) {
  const list = $("results");
  list.replaceChildren();
  $("status").textContent = hits.length ? hits.length + " results for " + label : "No results for " + label;
  hits.forEach((h, i) => {
    const li = document.createElement("li");
    li.className = "hit";
    li.tabIndex = 0;
    li.dataset.id = h.id;
    const title = h.text || (h.captions && h.captions[0]) || h.path || ("#" + h.id);
    li.setAttribute("aria-label", "Result " + (i + 1) + ": " + title);
    const head = document.createElement("div");
    head.className = "hit-head";
    const name = document.createElement("span");
    name.className = "hit-title";
    name.textContent = title;
    const score = document.createElement("span");
    score.className = "score";
    score.title = "ranking score";
    score.textContent = h.score.toFixed(3);
    head.append(name, score);
    li.append(head);
    const meta = document.createElement("div");
    meta.className = "hit-meta";
    const parts = [];
    if (h.path) parts.push(h.path);
    if (h.duration) parts.push(fmtTime(h.duration));
    if (h.duration && h.start !== null && h.end !== null && (h.start > 0 || h.end < h.duration - 1e-3)) {
      parts.push("moment " + fmtTime(h.start) + "–" + fmtTime(h.end));
    }
    if (h.clip) parts.push("clip " + h.clip);
    meta.textContent = parts.join(" · ");
    li.append(meta);
    const why = whyText(h);
    if (why) {
      const w = document.createElement("div");
      w.className = "why";
      w.textContent = why;
      li.append(w);
    }
    if (h.captions && h.captions.length > 1) {
      const caps = document.createElement("ul");
      caps.className = "captions";
      h.captions.slice(1, 5).forEach((c) => { const x = document.createElement("li"); x.textContent = c; caps.append(x); });
      li.append(caps);
    }
    if (h.tags && h.tags.length) {
      const tags = document.createElement("div");
      tags.className = "tags";
      h.tags.forEach((t) => { const x = document.createElement("span"); x.className = "tag"; x.textContent = t; tags.append(x); });
      li.append(tags);
    }
    if (h.path) {
      const peaks = decodePeaks(h.peaks);
      const canvas = document.createElement("canvas");
      canvas.className = "wave";
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", "Waveform of " + title + " (click to play from there)");
      li.append(canvas);
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = h.audio_url || ("/api/clips/" + encodeURIComponent(h.id) + "/audio");
      audio.dataset.start = h.start || 0;
      audio.setAttribute("aria-label", "Play result " + (i + 1) + ": " + title);
      audio.addEventListener("timeupdate", () => drawWave(canvas, peaks, h, audio.currentTime));
      canvas.addEventListener("click", (ev) => {
        if (!h.duration) return;
        const r = canvas.getBoundingClientRect();
        playFrom(audio, ((ev.clientX - r.left) / r.width) * h.duration);
      });
      li.append(audio);
      requestAnimationFrame(() => drawWave(canvas, peaks, h));
      const tools = document.createElement("div");
      tools.className = "tools";
      const play = document.createElement("button");
      play.type = "button";
      play.className = "play";
      play.textContent = h.start > 0 ? "▶ Play from " + fmtTime(h.start) : "▶ Play";
      play.addEventListener("click", () => playFrom(audio, h.start || 0));
      const sim = document.createElement("button");
      sim.type = "button";
      sim.className = "similar";
      sim.textContent = "Find similar";
      sim.setAttribute("aria-label", "Find sounds similar to " + title);
      sim.addEventListener("click", () => go(new URLSearchParams({ similar: h.id, k: $("k").value })));
      tools.append(play, sim);
      li.append(tools);
    }
    list.append(li);
  });
}

function playFrom(audio, t) {
  const start = () => { try { audio.currentTime = t; } catch (e) { /* not seekable yet */ } return audio.play(); };
  document.querySelectorAll("#results audio").forEach((a) => { if (a !== audio) a.pause(); });
  if (audio.readyState >= 1) return start();
  audio.preload = "auto";
  audio.addEventListener("loadedmetadata", start, { once: true });
  audio.load();
  return undefined;
}

// --- searches, driven by the URL --------------------------------------------------------------
function go(params) {
  const search = "?" + params.toString();
  if (search !== window.location.search) history.pushState(null, "", search);
  return run(params);
}

async function run(params) {
  showError("");
  current = params.toString();
  const k = params.get("k") || "10";
  if ([...$("k").options].some((o) => o.value === k)) $("k").value = k;
  if (params.get("similar")) {
    const id = params.get("similar");
    $("status").textContent = "Finding sounds similar to #" + id + "…";
    return fetchHits("/api/clips/" + encodeURIComponent(id) + "/similar?" + new URLSearchParams({ k: k }),
      (body) => "sounds like #" + id, params);
  }
  const q = (params.get("q") || "").trim();
  $("q").value = q;
  const mode = params.get("mode") || "auto";
  if ([...$("mode").options].some((o) => o.value === mode)) $("mode").value = mode;
  if (!q) { clearResults(); return undefined; }
  $("status").textContent = "Searching…";
  return fetchHits("/api/search?" + new URLSearchParams({ q: q, k: k, mode: mode }),
    (body) => "“" + body.query + "”" + (body.mode ? " (" + body.mode + ")" : ""), params);
}

async function fetchHits(url, label, params) {
  const mine = params.toString();
  try {
    const res = await fetch(url);
    if (current !== mine) return; // a newer search started meanwhile
    if (!res.ok) { clearResults(); showError(await apiError(res)); return; }
    const body = await res.json();
    if (current !== mine) return;
    renderHits(body.hits, label(body));
  } catch (e) {
    if (current !== mine) return;
    clearResults();
    showError("Cannot reach the server: " + e.message);
  }
}

async function searchUpload(file, k) {
  showError("");
  if (!file) { showError("Choose an audio file first."); $("file").focus(); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("k", k);
  current = "upload:" + file.name + ":" + Date.now();
  const mine = current;
  $("status").textContent = "Uploading " + file.name + "…";
  try {
    const res = await fetch("/api/search/audio", { method: "POST", body: form });
    if (current !== mine) return;
    if (!res.ok) { clearResults(); showError(await apiError(res)); return; }
    const body = await res.json();
    renderHits(body.hits, "sounds like " + file.name);
  } catch (e) {
    clearResults();
    showError("Upload failed: " + e.message);
  }
}

function textParams() {
  const p = new URLSearchParams({ q: $("q").value.trim() });
  if ($("k").value !== "10") p.set("k", $("k").value);
  if ($("mode").value !== "auto") p.set("mode", $("mode").value);
  return p;
}

// --- keyboard ---------------------------------------------------------------------------------
function onKey(ev) {
  const tag = (ev.target.tagName || "").toLowerCase();
  const typing = tag === "input" || tag === "select" || tag === "textarea";
  if (ev.key === "/" && !typing) { ev.preventDefault(); $("q").focus(); $("q").select(); return; }
  if (typing || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  const rows = [...document.querySelectorAll("#results li.hit")];
  if (!rows.length) return;
  const row = ev.target.closest ? ev.target.closest("li.hit") : null;
  const i = row ? rows.indexOf(row) : -1;
  if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); rows[Math.min(rows.length - 1, i + 1)].focus(); }
  else if (ev.key === "k" || ev.key === "ArrowUp") { ev.preventDefault(); rows[Math.max(0, i - 1)].focus(); }
  else if (row && ev.target === row && (ev.key === "Enter" || ev.key === " ")) {
    ev.preventDefault();
    const audio = row.querySelector("audio");
    if (audio) { if (audio.paused) playFrom(audio, Number(audio.dataset.start) || 0); else audio.pause(); }
  } else if (row && ev.key === "s") { const b = row.querySelector("button.similar"); if (b) b.click(); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if (!$("q").value.trim()) {
      clearResults();
      showError("Type a few words describing the sound.");
      $("q").focus();
      return;
    }
    go(textParams());
  });
  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchUpload($("file").files[0], $("k").value);
  });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => run(new URLSearchParams(window.location.search)));
  const params = new URLSearchParams(window.location.search);
  if (params.get("q") || params.get("similar")) run(params);
  fetch("/api/health").then((r) => r.json()).then((h) => {
    $("health").textContent = h.items + " sounds indexed" + (h.has_text ? " · names and tags searchable" : "");
  }).catch(() => {});
});
