"""Query an index: text -> audio, audio -> audio (query by example), audio -> text (caption
index), batched, with optional two-stage re-ranking (METHODS.md §8).

Hits are plain dicts ``{"id", "score", "path", "duration", "captions", "tags"}`` (re-ranked
hits add ``"index_score"``; caption-index hits add ``"text"`` and ``"clip"``).
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
    def search_vectors(self, queries: np.ndarray, k: int = 10) -> list[list[dict]]:
        """(q, dim) L2-normalised query embeddings -> hits per query (score = q.x + bias)."""
        k = _check_k(k)
        self.refresh()
        q = np.asarray(queries, np.float32).reshape(-1, int(self.manifest["dim"]))
        scores, ids = self.backend.search_arrays(fold_queries(q), k)
        meta = self.store.items(sorted({int(i) for i in ids.reshape(-1) if i >= 0}))
        return [[self._hit(meta[int(i)], float(s)) for s, i in zip(srow, irow) if int(i) in meta]
                for srow, irow in zip(scores, ids)]

    def _hit(self, row: dict, score: float) -> dict:
        hit = {"id": row["id"], "score": score, "path": row["key"] if row["path"] else None,
               "duration": row["duration"], "captions": row["captions"], "tags": row["tags"]}
        if self.kind == "captions":
            hit["text"] = row["captions"][0] if row["captions"] else ""
            hit["clip"] = row["source_id"]
        return hit

    # --- queries ---------------------------------------------------------------------------
    def search_text(self, query: str, k: int = 10, rerank: int = 0) -> list[dict]:
        """Text -> items. ``rerank`` = k' > 0: take the top-k' candidates from the index and
        re-score them with ``embedder.rerank`` (pair-wise scorer), when the embedder has one."""
        return self.search_batch([str(query)], k=k, rerank=rerank)[0]

    def search_audio(self, audio: str | Path | np.ndarray, k: int = 10, sample_rate: int | None = None) -> list[dict]:
        """Audio (file path or waveform at ``sample_rate``, default the embedder's) -> items."""
        q = self._embed_audio([audio], sample_rate)
        return self.search_vectors(q, k)[0]

    def search_batch(self, queries: Sequence[Any], k: int = 10, rerank: int = 0) -> list[list[dict]]:
        """Many queries at once: ``str`` = text, ``Path``/``np.ndarray`` = audio, or a dict
        ``{"text": ...}`` / ``{"audio": path}``. Texts and audios are embedded in one batch each."""
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
            emb = np.asarray(self.embedder.embed_text([t for _, t in texts]), np.float32)
            kk = max(k, rerank) if rerank else k
            hits = self.search_vectors(emb, kk)
            for (i, t), h in zip(texts, hits):
                out[i] = self._rerank(t, h, k) if rerank else h
        if audios:
            emb = self._embed_audio([a for _, a in audios], None)
            for (i, _), h in zip(audios, self.search_vectors(emb, k)):
                out[i] = h
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
