"""Moments inside long recordings: files longer than a window are also indexed as
overlapping windows, so a search can point at (file, start, end) instead of a whole file.

Defaults: window = the embedder's clip length (``embedder.max_seconds``, 10 s for the
shipped model), hop = half a window; files not longer than one window get no windows.
The last window is aligned to the end of the file, so every sample is covered.

Window vectors live in the ``windows`` table beside ``items`` and go to the vector backend
under ids ``WINDOW_ID_BASE + window id`` (the backend holds items and windows alike; removal
goes through the same tombstones). At search time the hits of one file are grouped: the
file scores its best vector; its moment is the best window, merged with the overlapping or
touching windows of that file that score within ``MERGE_MARGIN`` of it.

With a pair-wise scorer (TAP, GPA: ``embedder.rerank`` returns scores), a text query's moment
is refined from the best window's stored frame features: sub-spans of a half and a quarter
window (half-length hops) are scored by the scorer against the query, and the shortest one
scoring at least as high as the whole window becomes the moment (:func:`refine`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .store.moments import (SCHEMA, WINDOW_ID_BASE, count, drop, ensure_schema, iter_vectors, lookup,  # noqa: F401
                            of_items, put, window_frames)

__all__ = ["WINDOW_ID_BASE", "MERGE_MARGIN", "window_spans", "embed_windows", "ensure_schema", "put", "drop",
           "count", "iter_vectors", "lookup", "group_hits", "default_window"]

MERGE_MARGIN = 0.02


def default_window(embedder: Any, seconds: float | None, hop: float | None) -> tuple[float, float]:
    """(window, hop) in seconds: ``seconds``, else the embedder's clip length (``window_seconds``:
    the length its model embeds as one clip, e.g. CLAP's 10 s; else ``max_seconds``), else 10 s;
    hop: half the window."""
    native = getattr(embedder, "window_seconds", None) or getattr(embedder, "max_seconds", None)
    w = float(seconds if seconds is not None else (native or 10.0))
    h = float(hop if hop is not None else w / 2)
    if w < 0 or (w > 0 and not 0 < h <= w):
        raise ValueError(f"window must be >= 0 s (0: off) and 0 < hop <= window, got window={w}, hop={h}")
    return w, h


def window_spans(n_samples: int, sample_rate: int, seconds: float, hop: float) -> list[tuple[int, int]]:
    """Sample spans (start, end) of the windows of a wave of ``n_samples`` ([] if it fits one)."""
    win, step = int(round(seconds * sample_rate)), int(round(hop * sample_rate))
    if win <= 0 or n_samples <= win:
        return []
    starts = list(range(0, n_samples - win, max(step, 1)))
    if starts[-1] + win < n_samples:
        starts.append(n_samples - win)
    return [(s, s + win) for s in starts]


def embed_windows(embedder: Any, wave: np.ndarray, sample_rate: int, seconds: float, hop: float,
                  batch_size: int = 16, frames: list | None = None) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Embed the windows of ``wave``: ([(start_s, end_s)], (m, dim) float32); each window's
    frame features are appended to ``frames`` when it is a list."""
    spans = window_spans(len(wave), sample_rate, seconds, hop)
    if not spans:
        return [], np.zeros((0, int(embedder.dim)), np.float32)
    embs = []
    for s in range(0, len(spans), batch_size):
        e, f = embedder.embed_audio([wave[a:b] for a, b in spans[s:s + batch_size]])
        embs.append(np.asarray(e, np.float32))
        if frames is not None:
            frames.extend(np.asarray(x) for x in f)
    emb = np.concatenate(embs)
    if emb.shape != (len(spans), int(embedder.dim)) or not np.isfinite(emb).all():
        raise ValueError(f"window embeddings have shape {emb.shape} or non-finite values")
    return [(a / sample_rate, b / sample_rate) for a, b in spans], emb


def refine(embedder: Any, text: str, frames: np.ndarray, start: float, end: float) -> tuple[float, float] | None:
    """Refine a window's moment [start, end] for ``text`` with the pair-wise scorer (see the
    module docstring); None when the embedder has no pair-wise scorer or nothing shorter fits."""
    t = int(frames.shape[0])
    spans = []
    for length in (t // 2, t // 4):
        if length < 1:
            continue
        step = max(1, length // 2)
        spans += [(i, i + length) for i in range(0, t - length + 1, step)]
    if not spans:
        return None
    scores = embedder.rerank(text, [frames] + [frames[i:j] for i, j in spans])
    if scores is None:
        return None
    scores = np.asarray(scores, np.float64).reshape(-1)
    whole = scores[0]
    ok = [(j - i, -scores[n + 1], i, j) for n, (i, j) in enumerate(spans) if scores[n + 1] >= whole - 1e-6]
    if not ok:
        return None
    _, _, i, j = min(ok)
    per = (end - start) / t
    return start + i * per, start + j * per


def group_hits(scores: np.ndarray, ids: np.ndarray, windows: dict[int, tuple[int, float, float]], k: int,
               margin: float = MERGE_MARGIN) -> list[dict]:
    """One query's vector hits -> at most ``k`` files ``{"item", "score", "start", "end"}``
    (start/end None when the best vector is the whole file), best first."""
    per: dict[int, dict] = {}
    for s, i in zip(np.asarray(scores).tolist(), np.asarray(ids).tolist()):
        if i < 0:
            continue
        if i >= WINDOW_ID_BASE:
            if i not in windows:
                continue
            item, a, b = windows[i]
        else:
            item, a, b = int(i), None, None
        g = per.setdefault(item, {"item": item, "score": -np.inf, "best": None, "wins": [], "window": None})
        if a is not None:
            g["wins"].append((a, b, s))
        if s > g["score"]:
            g["score"], g["best"] = s, (a, b)
            g["window"] = int(i) if a is not None else None
    out = []
    for g in sorted(per.values(), key=lambda g: -g["score"])[:k]:
        a, b = g["best"]
        if a is not None:  # grow the best window over neighbours that score nearly as well
            wins = sorted(g["wins"])
            changed = True
            while changed:
                changed = False
                for wa, wb, ws in wins:
                    if ws >= g["score"] - margin and wa <= b and wb >= a and (wa < a or wb > b):
                        a, b, changed = min(a, wa), max(b, wb), True
        out.append({"item": g["item"], "score": float(g["score"]), "start": a, "end": b, "window": g["window"]})
    return out
