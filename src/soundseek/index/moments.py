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

import sqlite3
from typing import Any, Iterator

import numpy as np

__all__ = ["WINDOW_ID_BASE", "MERGE_MARGIN", "window_spans", "embed_windows", "ensure_schema", "put", "drop",
           "count", "iter_vectors", "lookup", "group_hits", "default_window"]

WINDOW_ID_BASE = 1 << 40
MERGE_MARGIN = 0.02
SCHEMA = ("CREATE TABLE IF NOT EXISTS windows(id INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER NOT NULL, "
          "start REAL NOT NULL, end REAL NOT NULL, embedding BLOB NOT NULL, gen INTEGER NOT NULL, "
          "frames_chunk INTEGER, frames_offset INTEGER, frames_shape TEXT, frames_dtype TEXT)",
          "CREATE INDEX IF NOT EXISTS windows_item ON windows(item_id)",
          "CREATE INDEX IF NOT EXISTS windows_gen ON windows(gen)")


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


def ensure_schema(con: sqlite3.Connection) -> None:
    for stmt in SCHEMA:
        con.execute(stmt)
    have = {r[1] for r in con.execute("PRAGMA table_info(windows)")}
    for col, typ in (("frames_chunk", "INTEGER"), ("frames_offset", "INTEGER"), ("frames_shape", "TEXT"),
                     ("frames_dtype", "TEXT")):
        if col not in have:  # a windows table written before frames were kept
            con.execute(f"ALTER TABLE windows ADD COLUMN {col} {typ}")


def _exists(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE name='windows'").fetchone() is not None


def put(con: sqlite3.Connection, item_id: int, spans: list[tuple[float, float]], emb: np.ndarray, gen: int,
        frame_refs: list | None = None) -> None:
    refs = frame_refs or [(None, None, None, None)] * len(spans)
    con.executemany("INSERT INTO windows(item_id, start, end, embedding, gen, frames_chunk, frames_offset, "
                    "frames_shape, frames_dtype) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(int(item_id), float(a), float(b), np.asarray(e, np.float32).tobytes(), int(gen), *ref)
                     for (a, b), e, ref in zip(spans, emb, refs)])


def drop(con: sqlite3.Connection, item_id: int, gen: int) -> None:
    """Remove the windows of ``item_id`` (tombstoned so the backend forgets them)."""
    if not _exists(con):
        return
    con.execute("INSERT OR REPLACE INTO tombstones(id, gen) SELECT id + ?, ? FROM windows WHERE item_id=?",
                (WINDOW_ID_BASE, int(gen), int(item_id)))
    con.execute("DELETE FROM windows WHERE item_id=?", (int(item_id),))


def count(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT COUNT(*) FROM windows").fetchone()[0]) if _exists(con) else 0


def iter_vectors(con: sqlite3.Connection, since_gen: int = -1, chunk: int = 65536
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(backend ids, embeddings, zero bias) of windows changed after ``since_gen``."""
    if not _exists(con):
        return
    last = -1
    while True:
        rows = con.execute("SELECT id, embedding FROM windows WHERE gen > ? AND id > ? ORDER BY id LIMIT ?",
                           (since_gen, last, chunk)).fetchall()
        if not rows:
            return
        ids = np.asarray([r[0] for r in rows], np.int64)
        emb = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        yield ids + WINDOW_ID_BASE, emb, np.zeros(len(ids), np.float32)
        last = int(ids[-1])


def lookup(con: sqlite3.Connection, vector_ids: list[int]) -> dict[int, tuple[int, float, float]]:
    """backend id -> (item id, start, end) for the window ids among ``vector_ids``."""
    wids = sorted({int(i) - WINDOW_ID_BASE for i in vector_ids if int(i) >= WINDOW_ID_BASE})
    out = {}
    for s in range(0, len(wids), 500):
        part = wids[s:s + 500]
        for r in con.execute(f"SELECT id, item_id, start, end FROM windows WHERE id IN ({','.join('?' * len(part))})",
                             part):
            out[int(r[0]) + WINDOW_ID_BASE] = (int(r[1]), float(r[2]), float(r[3]))
    return out


def window_frames(con: sqlite3.Connection, frames_store: Any, vector_id: int
                  ) -> tuple[np.ndarray, float, float] | None:
    """(stored frame features, start, end) of a window (by backend id), or None."""
    r = con.execute("SELECT frames_chunk, frames_offset, frames_shape, frames_dtype, start, end FROM windows "
                    "WHERE id=?", (int(vector_id) - WINDOW_ID_BASE,)).fetchone()
    if r is None or r[0] is None:
        return None
    frames = frames_store.read(r[0], r[1], r[2], r[3])  # None: missing or damaged
    return None if frames is None else (frames, float(r[4]), float(r[5]))


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
