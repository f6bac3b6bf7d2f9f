// soundseek library browser: plain JS, no build step. Talks to /api/* (service/routes/).
// Every view is a URL: ?q=&mode=&k=&page= (text), ?similar=ID, ?example=TOKEN&name= (an uploaded
// example, kept in this browser's IndexedDB so reload and Back can search it again),
// ?collection=NAME, plus the filters (min_duration, max_duration, sample_rate, channels, format,
// folder, tag). Back, Forward and reload restore the view. Keys: see the footer of index.html.
"use strict";

const $ = (id) => document.getElementById(id);
const FILTERS = ["min_duration", "max_duration", "sample_rate", "channels", "format", "folder", "tag"];
const VIEW_KEYS = ["q", "mode", "similar", "example", "name", "collection"];
let current = null; // the URL search string of the view on screen (answers to older ones are dropped)
let shown = []; // hits on screen
let view = null; // {params, total, next offset, api url builder}
let focusFirst = false;

function showError(msg) { $("error").textContent = msg; $("error").hidden = !msg; }
function setStatus(msg) { $("status").textContent = msg || ""; }
function setMessage(msg) { $("message").textContent = msg || ""; $("message").hidden = !msg; }

function clearResults(status) {
  $("results").replaceChildren();
  shown = [];
  $("more").hidden = true;
  setMessage("");
  setStatus(status);
}

function fmtTime(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m + ":" + String(Math.floor(s % 60)).padStart(2, "0");
}

function fmtRate(h) {
  const parts = [];
  if (h.sample_rate) parts.push((h.sample_rate / 1000).toFixed(h.sample_rate % 1000 ? 1 : 0) + " kHz");
  if (h.channels) parts.push(h.channels === 1 ? "mono" : h.channels === 2 ? "stereo" : h.channels + " ch");
  return parts.join(" ");
}

const baseName = (h) => h.name || (h.path || "").split("/").pop() || ("#" + h.id);
const folderOf = (h) => (h.folder !== undefined && h.folder !== null) ? h.folder
  : (h.path || "").split("/").slice(0, -1).join("/");

async function apiError(res) {
  try {
    const body = await res.json();
    if (typeof body.detail === "string") return body.detail;
    if (body.detail) return JSON.stringify(body.detail);
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

// Waveform thumbnail: one bar per stored peak, normalised to the loudest; the matching moment
// of a long file is shaded; the play position is a line.
function drawWave(canvas, peaks, hit, position) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 120, h = canvas.clientHeight || 20;
  canvas.width = Math.round(w * dpr);
  canvas.height = Math.round(h * dpr);
  const ctx = canvas.getContext("2d");
  ctx.scale(dpr, dpr);
  ctx.clearRect(0, 0, w, h);
  const dur = hit.duration || 0;
  if (dur > 0 && hit.start !== null && hit.end !== null && (hit.start > 0 || hit.end < dur - 1e-3)) {
    ctx.fillStyle = "rgba(245, 166, 35, 0.35)";
    ctx.fillRect((hit.start / dur) * w, 0, ((hit.end - hit.start) / dur) * w, h);
  }
  if (peaks && peaks.length) {
    let max = 1;
    for (const p of peaks) max = Math.max(max, p);
    const bw = w / peaks.length;
    ctx.fillStyle = "#0b62c4";
    for (let i = 0; i < peaks.length; i++) {
      const ph = Math.max(1, (peaks[i] / max) * (h - 2));
      ctx.fillRect(i * bw, (h - ph) / 2, Math.max(0.6, bw - 0.2), ph);
    }
  }
  if (position !== undefined && dur > 0) {
    ctx.fillStyle = "#1d232a";
    ctx.fillRect((position / dur) * w, 0, 1.5, h);
  }
}

function downloadUrl(h) { return "/api/clips/" + encodeURIComponent(h.id) + "/audio?download=true"; }
const MIME = { wav: "audio/wav", flac: "audio/flac", ogg: "audio/ogg", oga: "audio/ogg", mp3: "audio/mpeg",
  aiff: "audio/aiff", aif: "audio/aiff" };

function button(cls, text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.tabIndex = -1; // rows are the tab stops; their keys reach every action
  b.textContent = text;
  b.title = label;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", (ev) => { ev.stopPropagation(); onClick(); });
  return b;
}

function span(cls, text, title) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text || "";
  if (title) s.title = title;
  return s;
}

function renderRow(h, peaksB64, inCollections) {
  const li = document.createElement("li");
  li.className = "hit";
  li.tabIndex = 0;
  li.draggable = true;
  li.dataset.id = h.id;
  li.hit = h;
  const name = baseName(h);
  li.setAttribute("aria-label", name + (h.confidence ? ", " + h.confidence + " match" : ""));
  const fav = (inCollections || []).includes("favourites");
  const star = button("star", fav ? "★" : "☆", "Favourite (f)", () => toggleFavourite(li));
  star.setAttribute("aria-pressed", String(fav));
  const play = button("play", "▶", "Play " + name + " (Space)", () => togglePlay(li));
  const canvas = document.createElement("canvas");
  canvas.className = "wave";
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "Waveform of " + name + " (click to play from there)");
  const peaks = decodePeaks(peaksB64);
  li.draw = (pos) => drawWave(canvas, peaks, h, pos);
  canvas.addEventListener("click", (ev) => {
    if (!h.duration) return;
    const r = canvas.getBoundingClientRect();
    playRow(li, ((ev.clientX - r.left) / r.width) * h.duration);
  });
  const conf = span("conf" + (h.confidence ? " conf-" + h.confidence : ""), h.confidence || "",
    h.score !== null && h.score !== undefined ? "score " + h.score.toFixed(3) : "");
  const acts = span("acts");
  const dl = document.createElement("a");
  dl.className = "dl";
  dl.href = downloadUrl(h);
  dl.download = name;
  dl.tabIndex = -1;
  dl.textContent = "⤓";
  dl.title = "Download the original";
  acts.append(button("similar", "≈", "Sounds similar to " + name + " (s)", () => findSimilar(li)),
    button("copy", "copy", "Copy the absolute path (c)", () => copyPath(li)), dl,
    button("add", "+", "Add to the collection named in ‘Add to’ (a)", () => addToTarget(li)));
  const tags = (h.tags || []).join(", ");
  li.append(star, play, span("name", name, h.abs_path || h.path || ""), span("folder", folderOf(h), folderOf(h)),
    span("dur", fmtTime(h.duration)), span("rate", fmtRate(h)), span("fmt", (h.format || "").toUpperCase()),
    span("tags", tags, tags), conf, canvas, acts);
  li.addEventListener("dblclick", () => playRow(li));
  li.addEventListener("dragstart", (ev) => {
    const url = new URL(downloadUrl(h), window.location.href).href;
    const ext = (h.format || name.split(".").pop() || "").toLowerCase();
    ev.dataTransfer.effectAllowed = "copy";
    ev.dataTransfer.setData("DownloadURL", (MIME[ext] || "application/octet-stream") + ":" + name + ":" + url);
    ev.dataTransfer.setData("text/uri-list", url);
    ev.dataTransfer.setData("text/plain", h.abs_path || url);
  });
  requestAnimationFrame(() => li.draw());
  return li;
}

function appendHits(body) {
  const list = $("results");
  const peaks = body.peaks || {}, cols = body.collections || {};
  for (const h of body.hits) {
    list.append(renderRow(h, peaks[String(h.id)], cols[String(h.id)]));
    shown.push(h);
  }
}

// --- playing: one player for the page ------------------------------------------------------
let playing = null;

function playRow(li, at) {
  const player = $("player");
  const h = li.hit;
  const src = "/api/clips/" + encodeURIComponent(h.id) + "/audio";
  const t = at !== undefined ? at : (h.start || 0);
  document.querySelectorAll("#results li.playing").forEach((x) => {
    x.classList.remove("playing"); x.querySelector("button.play").textContent = "▶";
  });
  playing = li;
  li.classList.add("playing");
  li.querySelector("button.play").textContent = "❚❚";
  const start = () => { try { player.currentTime = t; } catch (e) { /* not seekable yet */ } return player.play(); };
  if (player.dataset.id === String(h.id) && player.readyState >= 1) return start();
  player.dataset.id = String(h.id);
  player.src = src;
  player.preload = "auto";
  player.addEventListener("loadedmetadata", start, { once: true });
  player.load();
  return undefined;
}

function togglePlay(li) {
  const player = $("player");
  if (playing === li && !player.paused) { player.pause(); return; }
  playRow(li);
}

// --- row actions ---------------------------------------------------------------------------
function findSimilar(li) {
  const p = new URLSearchParams({ similar: li.dataset.id });
  keepCommon(p);
  go(p);
}

async function copyPath(li) {
  const path = li.hit.abs_path || li.hit.path || "";
  let ok = false;
  try { await navigator.clipboard.writeText(path); ok = true; } catch (e) {
    const ta = document.createElement("textarea");
    ta.value = path;
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch (e2) { ok = false; }
    ta.remove();
    li.focus();
  }
  setStatus(ok ? "Copied " + path : "Could not copy; the path is " + path);
}

async function setMembership(li, name, add) {
  const res = await fetch("/api/collections/" + encodeURIComponent(name) + "/items/" + encodeURIComponent(li.dataset.id),
    { method: add ? "PUT" : "DELETE" });
  if (!res.ok) { showError(await apiError(res)); return null; }
  const body = await res.json();
  const fav = body.collections.includes("favourites");
  const star = li.querySelector("button.star");
  star.textContent = fav ? "★" : "☆";
  star.setAttribute("aria-pressed", String(fav));
  loadCollections();
  return body.collections;
}

async function toggleFavourite(li) {
  const on = li.querySelector("button.star").getAttribute("aria-pressed") === "true";
  const got = await setMembership(li, "favourites", !on);
  if (got) setStatus((on ? "Removed " : "Added ") + baseName(li.hit) + (on ? " from" : " to") + " favourites");
}

async function addToTarget(li) {
  const name = $("target").value.trim();
  if (!name) { showError("Type a collection name in ‘Add to’ first."); $("target").focus(); return; }
  const got = await setMembership(li, name, true);
  if (got) setStatus("Added " + baseName(li.hit) + " to " + name);
}

async function loadCollections() {
  try {
    const res = await fetch("/api/collections");
    if (!res.ok) return;
    const names = (await res.json()).collections;
    const sel = $("collection-view");
    const chosen = new URLSearchParams(window.location.search).get("collection") || "";
    sel.replaceChildren(new Option("Collections…", ""));
    $("collection-names").replaceChildren();
    for (const c of names) {
      sel.append(new Option(c.name + " (" + c.count + ")", c.name));
      $("collection-names").append(new Option(c.name));
    }
    sel.value = chosen;
  } catch (e) { /* the page still searches */ }
}

// --- the example file, kept in IndexedDB so the URL can name it -------------------------------
function idb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open("soundseek", 1);
    req.onupgradeneeded = () => req.result.createObjectStore("examples");
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function keepExample(token, file) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction("examples", "readwrite");
    tx.objectStore("examples").put({ file: file, name: file.name, at: Date.now() }, token);
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
  });
}

async function example(token) {
  const db = await idb();
  return new Promise((resolve, reject) => {
    const req = db.transaction("examples").objectStore("examples").get(token);
    req.onsuccess = () => resolve(req.result ? req.result.file : null);
    req.onerror = () => reject(req.error);
  });
}

// --- views, driven by the URL ---------------------------------------------------------------
function filterParams(from) {
  const p = new URLSearchParams();
  for (const f of FILTERS) { const v = from.get(f); if (v) p.set(f, v); }
  return p;
}

function keepCommon(p) {
  const cur = new URLSearchParams(window.location.search);
  for (const [key, v] of filterParams(cur)) p.set(key, v);
  if (cur.get("k")) p.set("k", cur.get("k"));
  return p;
}

function formFilters() {
  const p = new URLSearchParams();
  for (const f of FILTERS) { const v = $("f-" + f).value.trim(); if (v) p.set(f, v); }
  return p;
}

function go(params) {
  const search = "?" + params.toString();
  if (search !== window.location.search) history.pushState(null, "", search);
  return run(params);
}

function pageSize(params) {
  const k = params.get("k") || "50";
  return /^[0-9]{1,4}$/.test(k) ? Number(k) : 50;
}

async function run(params) {
  showError("");
  current = params.toString();
  const k = pageSize(params);
  if ([...$("k").options].some((o) => o.value === String(k))) $("k").value = String(k);
  for (const f of FILTERS) $("f-" + f).value = params.get(f) || "";
  $("q").value = params.get("q") || "";
  const mode = params.get("mode") || "auto";
  if ([...$("mode").options].some((o) => o.value === mode)) $("mode").value = mode;
  $("collection-view").value = params.get("collection") || "";
  const pages = Math.max(1, Math.min(20, Number(params.get("page")) || 1));
  const filters = filterParams(params);
  if (params.get("collection")) return showCollection(params.get("collection"), params);
  let request, label;
  if (params.get("similar")) {
    const id = params.get("similar");
    setStatus("Finding similar sounds…");
    request = (offset, n) => fetch("/api/clips/" + encodeURIComponent(id) + "/similar?" +
      new URLSearchParams([...filters, ["k", n], ["offset", offset]]));
    label = (body) => "similar to " + (body.name || "#" + id);
  } else if (params.get("example")) {
    const file = await example(params.get("example")).catch(() => null);
    if (current !== params.toString()) return undefined;
    if (!file) {
      clearResults();
      showError("The example file " + (params.get("name") || "") + " is no longer kept in this browser; upload it again.");
      return undefined;
    }
    setStatus("Searching like " + file.name + "…");
    request = (offset, n) => {
      const form = new FormData();
      form.append("file", file);
      form.append("k", n);
      return fetch("/api/search/audio?" + new URLSearchParams([...filters, ["offset", offset]]),
        { method: "POST", body: form });
    };
    label = () => "sounds like " + file.name;
  } else {
    const q = (params.get("q") || "").trim();
    if (!q) { clearResults(); return undefined; }
    setStatus("Searching…");
    request = (offset, n) => fetch("/api/search?" + new URLSearchParams([["q", q], ["mode", mode], ...filters,
      ["k", n], ["offset", offset]]));
    label = (body) => "“" + body.query + "”" + (body.mode ? " (" + body.mode + ")" : "");
  }
  view = { params: params, k: k, request: request, label: label, next: 0, total: 0, pages: pages };
  return fetchPage(view, 0, Math.min(1000, k * pages), true);
}

async function fetchPage(v, offset, n, fresh) {
  const mine = v.params.toString();
  try {
    const res = await v.request(offset, n);
    if (current !== mine) return;
    if (!res.ok) { clearResults(); showError(await apiError(res)); return; }
    const body = await res.json();
    if (current !== mine) return;
    if (fresh) clearResults();
    appendHits(body);
    v.next = offset + body.hits.length;
    v.total = body.total;
    if (offset === 0) setMessage(body.message);
    setStatus(shown.length ? shown.length + " of " + body.total + " · " + v.label(body)
      : "No results for " + v.label(body));
    $("more").hidden = !(body.hits.length === n && v.next < body.total);
    if (focusFirst && fresh) {
      focusFirst = false;
      const first = document.querySelector("#results li.hit");
      if (first) first.focus();
    }
  } catch (e) {
    if (current !== mine) return;
    clearResults();
    showError("Cannot reach the server: " + e.message);
  }
}

function more() {
  if (!view) return;
  const p = new URLSearchParams(view.params);
  view.pages += 1;
  p.set("page", String(view.pages));
  history.replaceState(null, "", "?" + p.toString());
  view.params = p;
  current = p.toString();
  fetchPage(view, view.next, view.k, false);
}

async function showCollection(name, params) {
  const mine = params.toString();
  setStatus("Opening " + name + "…");
  view = null;
  const res = await fetch("/api/collections/" + encodeURIComponent(name));
  if (current !== mine) return;
  if (!res.ok) { clearResults(); showError(await apiError(res)); return; }
  const body = await res.json();
  clearResults();
  appendHits(body);
  const missing = body.missing.length ? " (" + body.missing.length + " no longer in the library)" : "";
  setStatus("Collection " + body.name + ": " + body.hits.length + " files" + missing);
  if (focusFirst) { focusFirst = false; const f = document.querySelector("#results li.hit"); if (f) f.focus(); }
}

function textParams() {
  const p = new URLSearchParams({ q: $("q").value.trim() });
  if ($("mode").value !== "auto") p.set("mode", $("mode").value);
  for (const [key, v] of formFilters()) p.set(key, v);
  if ($("k").value !== "50") p.set("k", $("k").value);
  return p;
}

// The current view with new filters (page 1).
function refilter() {
  const cur = new URLSearchParams(window.location.search);
  const p = new URLSearchParams();
  for (const key of VIEW_KEYS) if (cur.get(key)) p.set(key, cur.get(key));
  if (!p.get("q") && !p.get("similar") && !p.get("example")) {
    if (!$("q").value.trim()) return;
    p.set("q", $("q").value.trim());
  }
  p.delete("collection");
  for (const [key, v] of formFilters()) p.set(key, v);
  if ($("k").value !== "50") p.set("k", $("k").value);
  go(p);
}

// --- keyboard ---------------------------------------------------------------------------------
function rows() { return [...document.querySelectorAll("#results li.hit")]; }

function onKey(ev) {
  const t = ev.target;
  const tag = (t.tagName || "").toLowerCase();
  const typing = tag === "input" || tag === "select" || tag === "textarea";
  if (t === $("q")) {
    if (ev.key === "ArrowDown" && rows().length) { ev.preventDefault(); rows()[0].focus(); }
    else if (ev.key === "Escape") { ev.preventDefault(); $("q").blur(); }
    return;
  }
  if (ev.key === "/" && !typing) { ev.preventDefault(); $("q").focus(); $("q").select(); return; }
  if (typing || ev.altKey || ev.ctrlKey || ev.metaKey) {
    if (ev.key === "Escape" && typing) t.blur();
    return;
  }
  const all = rows();
  if (!all.length) return;
  const row = t.closest ? t.closest("li.hit") : null;
  const i = row ? all.indexOf(row) : -1;
  if (ev.key === "j" || ev.key === "ArrowDown") { ev.preventDefault(); all[Math.min(all.length - 1, i + 1)].focus(); }
  else if (ev.key === "k" || ev.key === "ArrowUp") {
    ev.preventDefault();
    if (i <= 0) $("q").focus(); else all[i - 1].focus();
  } else if (!row) return;
  else if (ev.key === " " || ev.key === "Enter") { ev.preventDefault(); togglePlay(row); }
  else if (ev.key === "s") { ev.preventDefault(); findSimilar(row); }
  else if (ev.key === "c") { ev.preventDefault(); copyPath(row); }
  else if (ev.key === "f") { ev.preventDefault(); toggleFavourite(row); }
  else if (ev.key === "a") { ev.preventDefault(); addToTarget(row); }
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
    const p = textParams();
    focusFirst = true;
    if ("?" + p.toString() === window.location.search && rows().length) { focusFirst = false; rows()[0].focus(); return; }
    go(p);
  });
  $("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    showError("");
    const file = $("file").files[0];
    if (!file) { showError("Choose an audio file first."); $("file").focus(); return; }
    const token = Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    try { await keepExample(token, file); } catch (e) { showError("Cannot keep the example: " + e.message); return; }
    const p = new URLSearchParams({ example: token, name: file.name }); // the text query leaves the URL
    for (const [key, v] of formFilters()) p.set(key, v);
    if ($("k").value !== "50") p.set("k", $("k").value);
    go(p);
  });
  $("filters").addEventListener("change", (ev) => { if (ev.target.id !== "target" && ev.target.id !== "collection-view") refilter(); });
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); refilter(); });
  $("clear-filters").addEventListener("click", () => { for (const f of FILTERS) $("f-" + f).value = ""; refilter(); });
  $("collection-view").addEventListener("change", () => {
    const name = $("collection-view").value;
    if (name) go(new URLSearchParams({ collection: name }));
  });
  $("more").addEventListener("click", more);
  const player = $("player");
  player.addEventListener("timeupdate", () => { if (playing && playing.draw) playing.draw(player.currentTime); });
  player.addEventListener("pause", () => { if (playing) playing.querySelector("button.play").textContent = "▶"; });
  player.addEventListener("play", () => { if (playing) playing.querySelector("button.play").textContent = "❚❚"; });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => run(new URLSearchParams(window.location.search)));
  loadCollections();
  const params = new URLSearchParams(window.location.search);
  if ([...VIEW_KEYS].some((key) => params.get(key))) run(params);
  fetch("/api/health").then((r) => r.json()).then((h) => {
    $("health").textContent = h.items + " sounds indexed" + (h.has_text ? " · names and tags searchable" : "");
  }).catch(() => {});
});
