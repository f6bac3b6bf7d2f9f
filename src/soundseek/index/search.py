"""Query an index: text -> audio, audio -> audio (query by example), audio -> text (caption
index), batched, with optional two-stage re-ranking (METHODS.md §8).

Hits are plain dicts ``{"id", "score", "path", "duration", "captions", "tags", "start", "end",
"why"}``: ``start``/``end`` (seconds) locate the matching moment of a long recording (the whole
file otherwise), ``why`` says why it matched (semantic score, BM25 score, matched words).
Re-ranked hits add ``"index_score"``; caption-index hits add ``"text"`` and ``"clip"``.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .backends.base import fold_queries
from .embedder import check_embedder
from .manifest import check_compatible, open_backend, read_manifest
from .store import Store

__all__ = ["Searcher", "MAX_K"]
MAX_K = 1000


class Searcher:
    """Search an index built by :func:`~soundseek.index.build_index` or ``build_caption_index``.

    Thread-safe for concurrent searches (one SQLite connection per thread; FAISS reads are
    thread-safe). The backend is brought up to date with the store on open (in memory if
    the directory is read-only).

    Args:
        index_dir: the index directory.
        embedder: the embedder the index was built with (fingerprint checked).
        backend_options: overrides (e.g. ``{"uri": ...}`` for a Milvus server).
    Raises:
        FileNotFoundError: no index there; IndexMismatchError: other embedder.
    """

    def __init__(self, index_dir: str | Path, embedder: Any, backend_options: dict | None = None) -> None:
        check_embedder(embedder)
        self.index_dir = Path(index_dir)
        man = read_manifest(self.index_dir)
        if man is None:
            raise FileNotFoundError(f"No index at {self.index_dir} (missing manifest.json)")
        check_compatible(man, embedder, self.index_dir)
        self.manifest, self.embedder = man, embedder
        self.kind = man.get("kind", "clips")
        self.store = Store(self.index_dir)
        self._lock = threading.Lock()
        self._gen, self._checked = self.store.generation, time.monotonic()
        try:
            self.backend = open_backend(self.index_dir, self.store, man, save=True, overrides=backend_options)
        except OSError:  # read-only index dir: keep the synced backend in memory only
            self.backend = open_backend(self.index_dir, self.store, man, save=False, overrides=backend_options)

    def __len__(self) -> int:
        return len(self.backend)

    def refresh(self, every: float = 1.0) -> bool:
        """Pick up changes committed by an indexer running meanwhile (checked at most every
        ``every`` seconds; the backend is synced in memory). Returns True if it reloaded."""
        now = time.monotonic()
        if now - self._checked < every:
            return False
        with self._lock:
            self._checked = now
            gen = self.store.generation
            if gen == self._gen:
                return False
            self.backend = open_backend(self.index_dir, self.store, self.manifest, save=False)
            self._gen = gen
        return True

    # --- core ------------------------------------------------------------------------------
    @property
    def has_text(self) -> bool:
        """True when the index has words to search (file names, tags, captions)."""
        from .textindex import has_text

        if self.kind != "clips":
            return False
        return has_text(self.store.con)

    def search_vectors(self, queries: np.ndarray, k: int = 10, texts: Sequence[str] | None = None) -> list[list[dict]]:
        """(q, dim) L2-normalised query embeddings -> hits per query (score = q.x + bias), at
        most ``k`` files each: the windows of a long recording are grouped into one hit whose
        ``start``/``end`` (seconds) mark the moment (:mod:`.moments`). ``texts``: the queries'
        texts, to refine moments with a pair-wise scorer (:func:`.moments.refine`)."""
        out = self._search_raw(queries, k)
        return [self._refine(t, h) for t, h in zip(texts or [None] * len(out), out)]

    def _search_raw(self, queries: np.ndarray, k: int) -> list[list[dict]]:
        """:meth:`search_vectors` keeping each hit's best window id (``_window``)."""
        groups = self._vector_groups(queries, k)
        meta = self.store.items(sorted({g["item"] for gs in groups for g in gs}))
        return [[self._hit(meta[g["item"]], g["score"], g["start"], g["end"], g["window"]) for g in gs
                 if g["item"] in meta] for gs in groups]

    def _vector_groups(self, queries: np.ndarray, k: int) -> list[list[dict]]:
        """Per query, at most ``k`` files ``{"item", "score", "start", "end", "window"}`` (no metadata)."""
        from . import moments

        k = _check_k(k)
        self.refresh()
        q = np.asarray(queries, np.float32).reshape(-1, int(self.manifest["dim"]))
        n_vec = len(self.backend)
        has_windows = n_vec > self.store.count()
        fetch = min(n_vec, 4 * k + 16) if has_windows else k
        while True:
            scores, ids = self.backend.search_arrays(fold_queries(q), max(fetch, 1))
            wins = moments.lookup(self.store.con, ids.reshape(-1).tolist()) if has_windows else {}
            groups = [moments.group_hits(srow, irow, wins, k) for srow, irow in zip(scores, ids)]
            if not has_windows or fetch >= n_vec or all(len(g) >= k for g in groups):
                break
            fetch = min(n_vec, fetch * 4)
        return groups

    def _refine(self, text: str | None, hits: list[dict]) -> list[dict]:
        """Refine window moments for ``text`` with the pair-wise scorer; drop the internal keys."""
        from . import moments

        for h in hits:
            wid = h.pop("_window", None)
            if text is None or wid is None or getattr(self, "_no_pair_scorer", False):
                continue
            got = moments.window_frames(self.store.con, self.store.frames, wid)
            if got is None or (got[1], got[2]) != (h["start"], h["end"]):
                continue  # no frames kept, or a moment merged over several windows: kept as is
            frames = np.asarray(got[0], np.float32)
            r = moments.refine(self.embedder, text, frames, h["start"], h["end"])
            if r is None:
                if self.embedder.rerank(text, [frames]) is None:
                    self._no_pair_scorer = True  # a global model: nothing to refine with
                continue
            h["start"], h["end"] = r
        return hits

    def _hit(self, row: dict, score: float, start: float | None = None, end: float | None = None,
             window: int | None = None) -> dict:
        dur = row["duration"]
        hit = {"id": row["id"], "score": score, "path": row["key"] if row["path"] else None,
               "duration": dur, "captions": row["captions"], "tags": row["tags"],
               "start": 0.0 if start is None and dur is not None else start,
               "end": dur if end is None else end}
        if self.kind == "captions":
            hit["text"] = row["captions"][0] if row["captions"] else ""
            hit["clip"] = row["source_id"]
        if window is not None:
            hit["_window"] = window
        return hit

    def _semantic_scores(self, q: np.ndarray, item_ids: list[int]) -> dict[int, tuple[float, float | None, float | None]]:
        """Exact ``q . x + bias`` of the given items (best of the file and its windows)."""
        from . import moments

        out: dict[int, tuple[float, float | None, float | None]] = {}
        con = self.store.con
        for s in range(0, len(item_ids), 500):
            part = [int(i) for i in item_ids[s:s + 500]]
            marks = ",".join("?" * len(part))
            for i, emb, bias in con.execute(f"SELECT id, embedding, bias FROM items WHERE id IN ({marks})", part):
                out[int(i)] = (float(np.frombuffer(emb, np.float32) @ q) + float(bias), None, None)
            if moments.count(con):
                for i, a, b, emb in con.execute(f"SELECT item_id, start, end, embedding FROM windows "
                                                f"WHERE item_id IN ({marks})", part):
                    sc = float(np.frombuffer(emb, np.float32) @ q)
                    if int(i) in out and sc > out[int(i)][0]:
                        out[int(i)] = (sc, a, b)
        return out

    def search_modes(self, text: str, q: np.ndarray | None, k: int, mode: str,
                     text_weight: float | None = None) -> list[dict]:
        """One text query in ``mode`` (``q``: its embedding; None allowed in text mode). Every
        hit carries ``why``: ``{"semantic": score | None, "text": BM25 | None, "matched": [words]}``."""
        from . import hybrid, textindex

        k = _check_k(k)
        if mode == "semantic":
            hits = self.search_vectors(q[None], k, texts=[text])[0]
            return [{**h, "why": {"semantic": h["score"], "text": None, "matched": []}} for h in hits]
        self.refresh()
        cand = max(100, 4 * k)
        thits = {t.id: t for t in textindex.search(self.store.con, text, cand if mode == "hybrid" else k)}
        if mode == "text":
            order = [(i, t.score) for i, t in thits.items()]
            sem = self._semantic_scores(q, list(thits)) if q is not None else {}
            meta = self.store.items([i for i, _ in order])
            out = []
            for i, sc in order:
                if i in meta:
                    h = self._hit(meta[i], sc)
                    h["why"] = {"semantic": sem[i][0] if i in sem else None, "text": sc, "matched": thits[i].matched}
                    out.append(h)
            return out
        vec = self._vector_groups(q[None], min(cand, MAX_K))[0]
        sem = {g["item"]: (g["score"], g["start"], g["end"]) for g in vec}
        wins = {g["item"]: g["window"] for g in vec}
        missing = [i for i in thits if i not in sem]
        sem.update(self._semantic_scores(q, missing))
        fused = hybrid.fuse({i: v[0] for i, v in sem.items()}, {i: t.score for i, t in thits.items()},
                            hybrid.TEXT_WEIGHT if text_weight is None else text_weight)[:k]
        meta = self.store.items([i for i, *_ in fused])
        out = []
        for i, f, _, _ in fused:
            if i not in meta:
                continue
            sc, a, b = sem.get(i, (None, None, None))
            h = self._hit(meta[i], f, a, b, wins.get(i))
            h["why"] = {"semantic": sc, "text": thits[i].score if i in thits else None,
                        "matched": thits[i].matched if i in thits else []}
            out.append(h)
        return self._refine(text, out)

    # --- queries ---------------------------------------------------------------------------
    def search_text(self, query: str, k: int = 10, rerank: int = 0, mode: str | None = None,
                    text_weight: float | None = None) -> list[dict]:
        """Text -> items. ``mode``: semantic | text | hybrid (default: hybrid when the index
        has text, see :mod:`.hybrid`). ``rerank`` = k' > 0 (semantic mode): take the top-k'
        candidates from the index and re-score them with ``embedder.rerank`` (pair-wise
        scorer), when the embedder has one."""
        return self.search_batch([str(query)], k=k, rerank=rerank, mode=mode, text_weight=text_weight)[0]

    def search_audio(self, audio: str | Path | np.ndarray, k: int = 10, sample_rate: int | None = None) -> list[dict]:
        """Audio (file path or waveform at ``sample_rate``, default the embedder's) -> items."""
        q = self._embed_audio([audio], sample_rate)
        return self.search_vectors(q, k)[0]

    def similar(self, item_id: int, k: int = 10) -> list[dict] | None:
        """Items that sound like item ``item_id`` (its stored vector as the query), itself
        excluded; None if the id is unknown."""
        row = self.store.con.execute("SELECT embedding FROM items WHERE id=?", (int(item_id),)).fetchone()
        if row is None:
            return None
        q = np.frombuffer(row[0], np.float32)[None]
        hits = self.search_vectors(q, min(_check_k(k) + 1, MAX_K))[0]
        return [h for h in hits if h["id"] != int(item_id)][:k]

    def search_batch(self, queries: Sequence[Any], k: int = 10, rerank: int = 0, mode: str | None = None,
                     text_weight: float | None = None) -> list[list[dict]]:
        """Many queries at once: ``str`` = text, ``Path``/``np.ndarray`` = audio, or a dict
        ``{"text": ...}`` / ``{"audio": path}``. Texts and audios are embedded in one batch each.
        ``mode`` applies to text queries (audio queries are always semantic)."""
        from .hybrid import resolve_mode

        k, rerank = _check_k(k), int(rerank)
        if rerank < 0:
            raise ValueError(f"rerank must be >= 0, got {rerank}")
        texts, audios = [], []
        for i, q in enumerate(queries):
            if isinstance(q, dict):
                if "text" in q:
                    q = str(q["text"])
                elif "audio" in q:
                    q = Path(q["audio"])
                else:
                    raise ValueError(f"query {i}: a dict query needs a 'text' or 'audio' key, got {sorted(q)}")
            if isinstance(q, str):
                if not q.strip():
                    raise ValueError(f"query {i} is empty")
                texts.append((i, q))
            elif isinstance(q, (Path, np.ndarray)):
                audios.append((i, q))
            else:
                raise TypeError(f"query {i}: expected str, Path, ndarray or dict, got {type(q).__name__}")
        out: list[list[dict]] = [[] for _ in queries]
        if texts:
            if rerank and mode in (None, "", "auto"):
                mode = "semantic"  # the pair-wise re-ranker is a second stage of the vector search
            mode = resolve_mode(mode, self.has_text if mode in (None, "", "auto") else True)
            if rerank and mode != "semantic":
                raise ValueError(f"rerank applies to semantic search, not mode {mode!r}")
            if mode != "semantic" and self.kind != "clips":
                raise ValueError(f"mode {mode!r} needs a clip index with text; this is a {self.kind} index")
            emb = None if mode == "text" else np.asarray(self.embedder.embed_text([t for _, t in texts]), np.float32)
            if mode == "semantic":
                kk = max(k, rerank) if rerank else k
                hits = self.search_vectors(emb, kk, texts=[t for _, t in texts])
                for (i, t), h in zip(texts, hits):
                    h = self._rerank(t, h, k) if rerank else h
                    out[i] = [{**x, "why": {"semantic": x.get("index_score", x["score"]), "text": None,
                                            "matched": []}} for x in h]
            else:
                for j, (i, t) in enumerate(texts):
                    out[i] = self.search_modes(t, None if emb is None else emb[j], k, mode, text_weight)
        if audios:
            emb = self._embed_audio([a for _, a in audios], None)
            for (i, _), h in zip(audios, self.search_vectors(emb, k)):
                out[i] = [{**x, "why": {"semantic": x["score"], "text": None, "matched": []}} for x in h]
        return out

    def _rerank(self, text: str, hits: list[dict], k: int) -> list[dict]:
        if self.kind != "clips" or not hits:
            return hits[:k]
        frames = self.store.frames_of([h["id"] for h in hits])
        if any(f is None for f in frames):
            return hits[:k]
        scores = self.embedder.rerank(text, frames)
        if scores is None:
            return hits[:k]
        scores = np.asarray(scores, np.float64).reshape(-1)
        if scores.shape[0] != len(hits):
            raise ValueError(f"embedder.rerank returned {scores.shape[0]} scores for {len(hits)} candidates")
        order = np.argsort(-scores, kind="stable")[:k]
        return [{**hits[j], "score": float(scores[j]), "index_score": hits[j]["score"]} for j in order]

    def _embed_audio(self, audios: list, sample_rate: int | None) -> np.ndarray:
        from .indexer import load_wave

        sr = int(self.embedder.sample_rate)
        waves = []
        for a in audios:
            if isinstance(a, np.ndarray):
                w = np.asarray(a, np.float32).reshape(-1)
                if sample_rate is not None and int(sample_rate) != sr:
                    from ..audio.io import resample
                    w = resample(w, int(sample_rate), sr)
                if w.size == 0 or not np.isfinite(w).all():
                    raise ValueError("query waveform is empty or has NaN/Inf samples")
            else:
                w, _ = load_wave(a, sr, self.manifest.get("max_seconds"))
                if w.size == 0:
                    raise ValueError(f"{Path(a).name}: no audio samples")
            waves.append(w)
        emb, _ = self.embedder.embed_audio(waves)
        return np.asarray(emb, np.float32)

    # --- metadata --------------------------------------------------------------------------
    def get(self, item_id: int) -> dict | None:
        """Metadata of one item (None if unknown)."""
        rows = self.store.items([int(item_id)])
        if not rows:
            return None
        r = rows[int(item_id)]
        return {**self._hit(r, 0.0), "sample_rate": r["sample_rate"], "channels": r["channels"],
                "size": r["size"], "sha1": r["sha1"], "meta": r["meta"], "bias": r["bias"]}

    def audio_file(self, item_id: int) -> Path | None:
        """The indexed file of ``item_id`` if it is still the file that was indexed: a regular
        file whose resolved path equals the one recorded at index time. Never a path built
        from user input. None otherwise."""
        rows = self.store.items([int(item_id)])
        if not rows or not rows[int(item_id)]["path"]:
            return None
        r = rows[int(item_id)]
        p = Path(r["path"])
        try:
            if str(p.resolve(strict=True)) != r["realpath"] or not p.is_file():
                return None
        except (OSError, RuntimeError):
            return None
        return p

    def set_bias(self, bias: dict[int, float]) -> None:
        """Per-item additive bias (e.g. SK caption bias, METHODS.md §5) folded into the index."""
        with self._lock:
            self.store.set_bias(bias)
            self.backend = open_backend(self.index_dir, self.store, self.manifest, save=True)
            self._gen = self.store.generation


def _check_k(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 0 < int(k) <= MAX_K:
        raise ValueError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
    return int(k)
