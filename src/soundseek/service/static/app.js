// soundseek search page: plain JS, no build step. Talks to /api/* (see service/app.py).
"use strict";

const $ = (id) => document.getElementById(id);

function showError(msg) {
  const el = $("error");
  el.textContent = msg;
  el.hidden = !msg;
}

function fmtDuration(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return s.toFixed(1) + " s";
  const m = Math.floor(s / 60);
  return m + ":" + String(Math.round(s % 60)).padStart(2, "0");
}

async function apiError(res) {
  try {
    const body = await res.json();
    if (typeof body.detail === "string") return body.detail;
    if (Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  } catch (e) { /* not JSON */ }
  return "Request failed (HTTP " + res.status + ")";
}

function renderHits(hits, label) {
  const list = $("results");
  list.replaceChildren();
  $("status").textContent = hits.length ? hits.length + " results for " + label : "No results for " + label;
  hits.forEach((h, i) => {
    const li = document.createElement("li");
    li.className = "hit";
    const title = h.text || (h.captions && h.captions[0]) || h.path || ("#" + h.id);
    const head = document.createElement("div");
    head.className = "hit-head";
    const name = document.createElement("span");
    name.className = "hit-title";
    name.textContent = title;
    const score = document.createElement("span");
    score.className = "score";
    score.title = "similarity score";
    score.textContent = h.score.toFixed(3);
    head.append(name, score);
    li.append(head);
    const meta = document.createElement("div");
    meta.className = "hit-meta";
    const parts = [];
    if (h.path) parts.push(h.path);
    if (h.duration) parts.push(fmtDuration(h.duration));
    if (h.clip) parts.push("clip " + h.clip);
    meta.textContent = parts.join(" · ");
    li.append(meta);
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
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.preload = "none";
      audio.src = "/api/clips/" + encodeURIComponent(h.id) + "/audio";
      audio.setAttribute("aria-label", "Play result " + (i + 1) + ": " + title);
      li.append(audio);
    }
    list.append(li);
  });
}

async function searchText(q, k, updateUrl) {
  showError("");
  q = q.trim();
  if (!q) { showError("Type a few words describing the sound."); $("q").focus(); return; }
  if (updateUrl) {
    const url = new URL(window.location.href);
    url.search = new URLSearchParams({ q: q, ...(k !== "10" ? { k: k } : {}) }).toString();
    history.replaceState(null, "", url);
  }
  $("status").textContent = "Searching…";
  try {
    const res = await fetch("/api/search?" + new URLSearchParams({ q: q, k: k }));
    if (!res.ok) { $("status").textContent = ""; showError(await apiError(res)); return; }
    const body = await res.json();
    renderHits(body.hits, "“" + body.query + "”");
  } catch (e) {
    $("status").textContent = "";
    showError("Cannot reach the server: " + e.message);
  }
}

async function searchUpload(file, k) {
  showError("");
  if (!file) { showError("Choose an audio file first."); $("file").focus(); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("k", k);
  $("status").textContent = "Uploading " + file.name + "…";
  try {
    const res = await fetch("/api/search/audio", { method: "POST", body: form });
    if (!res.ok) { $("status").textContent = ""; showError(await apiError(res)); return; }
    const body = await res.json();
    renderHits(body.hits, "sounds like " + file.name);
  } catch (e) {
    $("status").textContent = "";
    showError("Upload failed: " + e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchText($("q").value, $("k").value, true);
  });
  $("upload-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    searchUpload($("file").files[0], $("k").value);
  });
  const params = new URLSearchParams(window.location.search);
  const k = params.get("k");
  if (k && [...$("k").options].some((o) => o.value === k)) $("k").value = k;
  if (params.get("q")) {
    $("q").value = params.get("q");
    searchText(params.get("q"), $("k").value, false);
  }
  fetch("/api/health").then((r) => r.json()).then((h) => {
    $("health").textContent = h.items + " sounds indexed";
  }).catch(() => {});
});
