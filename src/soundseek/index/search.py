"""Query an index: text -> audio, audio -> audio (query by example), audio -> text (caption
index), batched, with optional two-stage re-ranking (METHODS.md §8).

Hits are plain dicts with the same keys everywhere (CLI ``--json``, the API, Python):

``id``, ``path`` (relative to the library), ``abs_path``, ``name`` (file name), ``folder``
(relative), ``score`` (the *semantic* score ``q . x``, also in hybrid and re-ranked searches;
None in text mode without a model), ``confidence`` (``strong`` | ``possible`` | ``weak``,
:mod:`.calibration`), ``duration``, ``sample_rate``, ``channels``, ``format``, ``tags``,
``captions``, ``start``/``end`` (seconds: the matching moment of a long recording, the whole
file otherwise) and ``why``: why it matched (``semantic``, ``text`` = BM25, ``matched`` words,
``fused`` = the hybrid rank-fusion score, ``margin`` and ``probability`` of the calibration).
Re-ranked hits add ``"index_score"``; caption-index hits add ``"text"`` and ``"clip"``.

Every search takes ``where`` (filters, :mod:`.filters`: applied inside the vector search) and
``offset`` (pagination: hits ``offset .. offset + k - 1`` of the ranking).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import calibration as _cal
from .backends.base import fold_queries
from .embedder import check_embedder
from .filters import FILTER_KEYS, check_where, item_folder, item_format, where_sql
from .manifest import BackendBehind, check_compatible, open_backend, probe_server, read_manifest
from .store import Store, shown_name
from .store import items as item_rows

__all__ = ["Searcher", "MAX_K", "MAX_QUERY_CHARS", "FILTER_KEYS", "HIT_KEYS", "validate_query", "missing_index_message"]
# the keys every hit has (re-ranked hits add index_score; caption-index hits text and clip)
HIT_KEYS = ("id", "path", "abs_path", "name", "folder", "score", "confidence", "duration", "sample_rate", "channels",
            "format", "tags", "captions", "start", "end", "why")
MAX_K = 1000
MAX_QUERY_CHARS = 1000  # the longest text query, locally and on the server
EXACT_FILTER_MAX = 2000  # a filter passing at most this many files is scored exactly, file by file


def validate_query(q: str, max_chars: int = MAX_QUERY_CHARS) -> str:
    """The one text-query check of the CLI, Python and the server: control and zero-width
    characters removed, white space collapsed. Raises ValueError (one line, with the fix) when
    nothing is left, when no letter or digit is left ("???") or when longer than ``max_chars``."""
    import unicodedata

    if not isinstance(q, str):
        raise TypeError(f"a text query must be a string, got {type(q).__name__}")
    kept = " ".join("".join(ch for ch in q if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")).split())
    if not kept:
        if q.strip():
            raise ValueError("query has no visible characters (only control, NUL or zero-width characters)")
        raise ValueError("empty query: type a few words describing the sound")
    if not any(ch.isalnum() for ch in kept):
        raise ValueError(f"query {kept[:40]!r} has no words: type a few words describing the sound")
    if len(kept) > max_chars:
        raise ValueError(f"query too long ({len(kept)} characters, limit {max_chars}): describe the sound in fewer words")
    return kept


def missing_index_message(index_dir: str | Path) -> str:
    """One line for a path that holds no index: what is there and the command that makes one."""
    p = Path(index_dir)
    if p.is_file():
        return (f"{p} is a file, not an index directory: give a folder for the index, e.g. "
                f"`soundseek index FOLDER --index {p.with_suffix('')}.index`")
    return f"no index at {p}: run `soundseek index FOLDER --index {p}` first"


class Searcher:
    """Search an index built by :func:`~soundseek.index.build_index` or ``build_caption_index``.

    Thread-safe for concurrent searches (one SQLite connection per thread; FAISS reads are
    thread-safe). The backend is brought up to date with the store on open (in memory if
    the directory is read-only). :meth:`open` is the one entry of the CLI, the server and
    ``soundseek.Index``: it loads the model recorded in the index.
    ``backend_options`` is kept as given (with :meth:`open`'s ``uri`` in it), so the directory
    can be opened again the same way after a rebuild (:class:`~soundseek.index.live.LiveSearcher`).

    Args:
        index_dir: the index directory.
        embedder: the embedder the index was built with (fingerprint checked); None: text-mode
            searches only (no model loaded).
        backend_options: overrides (e.g. ``{"uri": ...}`` for a Milvus server).
        calibration: match-confidence calibration (default: :func:`.calibration.load_for` the
            index's model).
    Raises:
        FileNotFoundError: no index there; IndexMismatchError: other embedder.
    """

    def __init__(self, index_dir: str | Path, embedder: Any, backend_options: dict | None = None,
                 calibration: "_cal.Calibration | None" = None) -> None:
        self.index_dir = Path(index_dir)
        man = read_manifest(self.index_dir) if self.index_dir.is_dir() else None
        if man is None:
            raise FileNotFoundError(missing_index_message(self.index_dir))
        if embedder is not None:
            check_embedder(embedder)
            check_compatible(man, embedder, self.index_dir)
        self.manifest, self.embedder = man, embedder
        self.backend_options = dict(backend_options) if backend_options is not None else None
        self.kind = man.get("kind", "clips")
        self.store = Store(self.index_dir)
        self._lock = threading.Lock()
        self._gen, self._checked = self.store.generation, time.monotonic()
        self.calibration_given = calibration  # kept by a reopen after a rebuild (:mod:`.live`)
        self._calibration = calibration
        self._library: np.ndarray | None = None
        self._migrate_text()
        try:
            self.backend = open_backend(self.index_dir, self.store, man, save=True, overrides=backend_options)
        except OSError:  # read-only index dir: keep the synced backend in memory only
            self.backend = open_backend(self.index_dir, self.store, man, save=False, overrides=backend_options)

    def _migrate_text(self) -> None:
        """Bring an older index's words up to the current vocabulary (:func:`.textindex.migrate`)."""
        import sqlite3

        from . import textindex

        if self.kind != "clips" or not textindex.needs_migration(self.store.con):
            return
        try:
            with self.store.transaction() as con:
                textindex.migrate(con)
        except sqlite3.OperationalError:  # read-only: searches use the words it was built with
            pass

    @classmethod
    def open(cls, index_dir: str | Path, model: str | Path | None = None, embedder: Any = None,
             backend_options: dict | None = None, text_only: bool = False, uri: str | None = None,
             loader: Callable[[Any], Any] | None = None,
             calibration: "_cal.Calibration | None" = None) -> "Searcher":
        """Open ``index_dir`` with ``embedder``, or the model ``model``, or the model recorded in
        the index (the shipped default when none was recorded): the one way the CLI, ``serve``
        and ``soundseek.Index`` open an index.

        Args:
            backend_options: backend overrides; ``uri``: the Milvus server to use instead of the
                index's own (``backend_options["uri"]``).
            text_only: load no model (text-mode searches only).
            loader: turns a model reference (``model``, the index's, or None) into an embedder;
                default :meth:`soundseek.pipeline.Pipeline.load`.
            calibration: match-confidence calibration (default: the one of the index's model).
        Raises:
            FileNotFoundError: no index there (one line naming the fix); an unreachable Milvus
            server fails (one line, bounded time) before any model loads.
        """
        man = read_manifest(index_dir) if Path(index_dir).is_dir() else None
        if man is None:
            raise FileNotFoundError(missing_index_message(index_dir))
        if uri:
            backend_options = {**(backend_options or {}), "uri": uri}
        probe_server(index_dir, None, (backend_options or {}).get("uri"))
        if embedder is None and not text_only:
            if loader is None:
                from ..pipeline import Pipeline

                loader = Pipeline.load
            embedder = loader(model or man.get("model"))
        return cls(index_dir, embedder, backend_options=backend_options, calibration=calibration)

    def __len__(self) -> int:
        """Vectors in the backend (files plus the windows of long recordings); see :meth:`count`."""
        return len(self.backend)

    def count(self, where: dict | None = None) -> int:
        """Files (not windows) in the index that pass ``where``: the total a search shows."""
        return self.store.count(check_where(where))

    def _allowed(self, where: dict | None) -> set[int] | None:
        """Ids of the files passing ``where`` (None: no filter)."""
        w = check_where(where)
        return self.store.matching(w) if w else None

    @property
    def calibration(self) -> "_cal.Calibration":
        if self._calibration is None:
            self._calibration = _cal.load_for(self.manifest.get("model"), self.index_dir)
        return self._calibration

    def refresh(self, every: float = 1.0) -> bool:
        """Pick up changes committed by an indexer running meanwhile (checked at most every
        ``every`` seconds; a FAISS backend is synced in memory; a shared Milvus collection is
        only read, and picked up once the indexer has synced it). Returns True if it reloaded."""
        now = time.monotonic()
        if now - self._checked < every:
            return False
        with self._lock:
            self._checked = now
            gen = self.store.generation
            if gen == self._gen:
                return False
            try:
                self.backend = open_backend(self.index_dir, self.store, self.manifest, save=False,
                                            write_shared=False)
            except BackendBehind:
                return False  # the indexer syncs its Milvus collection when it finishes: asked again later
            self._gen = gen
            self._library = None
        return True

    # --- core ------------------------------------------------------------------------------
    @property
    def has_text(self) -> bool:
        """True when the index has words to search (file names, tags, captions)."""
        from .textindex import has_text

        if self.kind != "clips":
            return False
        return has_text(self.store.con)

    def _need_model(self, what: str) -> Any:
        if self.embedder is None:
            raise ValueError(f"{what} needs the model; this index was opened for text-mode search only")
        return self.embedder

    def search_vectors(self, queries: np.ndarray, k: int = 10, texts: Sequence[str] | None = None,
                       allowed: set[int] | None = None) -> list[list[dict]]:
        """(q, dim) L2-normalised query embeddings -> hits per query (score = q.x + bias), at
        most ``k`` files each: the windows of a long recording are grouped into one hit whose
        ``start``/``end`` (seconds) mark the moment (:mod:`.moments`). ``texts``: the queries'
        texts, to refine moments with a pair-wise scorer (:func:`.moments.refine`).
        ``allowed``: only these file ids (a filter, applied inside the search)."""
        out = self._search_raw(queries, k, allowed)
        return [self._refine(t, h) for t, h in zip(texts or [None] * len(out), out)]

    def _search_raw(self, queries: np.ndarray, k: int, allowed: set[int] | None = None) -> list[list[dict]]:
        """:meth:`search_vectors` keeping each hit's best window id (``_window``)."""
        groups = self._vector_groups(queries, k, allowed)
        meta = self.store.items(sorted({g["item"] for gs in groups for g in gs}))
        return [[self._hit(meta[g["item"]], g["score"], g["start"], g["end"], g["window"]) for g in gs
                 if g["item"] in meta] for gs in groups]

    def _vector_groups(self, queries: np.ndarray, k: int, allowed: set[int] | None = None) -> list[list[dict]]:
        """Per query, at most ``k`` files ``{"item", "score", "start", "end", "window"}`` (no
        metadata), among ``allowed`` when given: a small allowed set is scored exactly; else
        the vector search over-fetches until ``k`` allowed files are found or every vector was seen."""
        from . import moments

        k = _check_k(k)
        self.refresh()
        q = np.asarray(queries, np.float32).reshape(-1, int(self.manifest["dim"]))
        if allowed is not None and len(allowed) <= EXACT_FILTER_MAX:
            out = []
            for row in q:
                sem = self._semantic_scores(row, sorted(allowed))
                best = sorted(sem.items(), key=lambda t: (-t[1][0], t[0]))[:k]
                out.append([{"item": i, "score": sc, "start": a, "end": b, "window": None} for i, (sc, a, b) in best])
            return out
        n_vec = len(self.backend)
        has_windows = n_vec > self.store.count()
        fetch = min(n_vec, 4 * k + 16) if (has_windows or allowed is not None) else k
        while True:
            scores, ids = self.backend.search_arrays(fold_queries(q), max(fetch, 1))
            wins = moments.lookup(self.store.con, ids.reshape(-1).tolist()) if has_windows else {}
            if allowed is not None:
                keep = np.asarray([[(wins[i][0] if i in wins else i) in allowed for i in row.tolist()] for row in ids],
                                  bool).reshape(ids.shape)
                groups = [moments.group_hits(srow[m], irow[m], wins, k) for srow, irow, m in zip(scores, ids, keep)]
            else:
                groups = [moments.group_hits(srow, irow, wins, k) for srow, irow in zip(scores, ids)]
            if fetch >= n_vec or all(len(g) >= k for g in groups) or not (has_windows or allowed is not None):
                break
            fetch = min(n_vec, fetch * 4)
        return groups

    def _refine(self, text: str | None, hits: list[dict]) -> list[dict]:
        """Refine window moments for ``text`` with the pair-wise scorer; drop the internal keys."""
        from . import moments

        for h in hits:
            wid = h.pop("_window", None)
            if text is None or wid is None or self.embedder is None or getattr(self, "_no_pair_scorer", False):
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

    def _hit(self, row: dict, score: float | None, start: float | None = None, end: float | None = None,
             window: int | None = None) -> dict:
        dur = row["duration"]
        clip = self.kind == "clips" and bool(row["path"])
        key = row["key"]
        hit = {"id": row["id"], "path": key if clip else None, "abs_path": shown_name(row["path"]) if clip else None,
               "name": key.rsplit("/", 1)[-1] if clip else None, "folder": item_folder(key) if clip else None,
               "score": score, "confidence": "weak", "duration": dur, "sample_rate": row["sample_rate"],
               "channels": row["channels"], "format": item_format(key) if clip else None, "tags": row["tags"],
               "captions": row["captions"],
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
            for i, emb, bias in item_rows.vectors_with_bias(con, part):
                out[int(i)] = (float(np.frombuffer(emb, np.float32) @ q) + float(bias), None, None)
            if moments.count(con):
                for i, a, b, emb in moments.of_items(con, part):
                    sc = float(np.frombuffer(emb, np.float32) @ q)
                    if int(i) in out and sc > out[int(i)][0]:
                        out[int(i)] = (sc, a, b)
        return out

    # --- confidence ------------------------------------------------------------------------
    def _library_sample(self) -> np.ndarray:
        """At most ``calibration.LIBRARY_SAMPLE`` item vectors spread over the index (fixed per generation)."""
        lib = self._library
        if lib is None:
            ids = self.store.ids()
            if len(ids) > _cal.LIBRARY_SAMPLE:
                ids = ids[np.linspace(0, len(ids) - 1, _cal.LIBRARY_SAMPLE).astype(int)]
            vecs = []
            for s in range(0, len(ids), 500):
                part = [int(i) for i in ids[s:s + 500]]
                for emb in item_rows.embeddings(self.store.con, part):
                    # a malformed or non-finite row (left for `index --check`) is no sample
                    v = np.frombuffer(emb, np.float32) if len(emb) == 4 * int(self.manifest["dim"]) else None
                    if v is not None and np.isfinite(v).all():
                        vecs.append(v)
            lib = np.stack(vecs) if vecs else np.zeros((0, int(self.manifest["dim"])), np.float32)
            self._library = lib
        return lib

    def _judge(self, q: np.ndarray | None, hits: list[dict], calibrated: bool = True) -> list[dict]:
        """Fill ``confidence`` and ``why.margin`` / ``why.probability`` of hits of query vector ``q``
        (text queries use the calibration; audio queries the margin alone). A hit whose words
        (file name, tags, captions, read through the vocabulary) match every query word, or whose
        name is exactly what was asked for, is at least ``possible`` in every mode: the score of
        the model alone says "weak" for ``perc_door.flac`` on "door" or ``drum_bass_hard.flac``
        on "bass drum". Text mode without a model: ``possible`` for those hits, else ``weak``."""
        cal = self.calibration if calibrated else _cal.UNCALIBRATED
        lib = self._library_sample() if q is not None else None
        mu = sd = None
        if lib is not None and len(lib) >= 2:
            d = lib @ np.asarray(q, np.float32)
            mu, sd = float(d.mean()), max(float(d.std()), 1e-6)
        for h in hits:
            why = h.setdefault("why", {})
            s = h.get("score")
            m = None if s is None or mu is None else (float(s) - mu) / sd
            h["confidence"] = cal.band(s, m)
            words_say_it = why.get("exact") or (why.get("coverage") or 0.0) >= 0.999
            if words_say_it and h["confidence"] == "weak":
                h["confidence"] = "possible"  # its words (name, tags, captions) say every query word
            why["margin"] = None if m is None else round(m, 4)
            why["probability"] = None if m is None else cal.probability(s, m)
            why["calibrated"] = cal.calibrated
        return hits

    def search_modes(self, text: str, q: np.ndarray | None, k: int, mode: str,
                     text_weight: float | None = None, allowed: set[int] | None = None,
                     where: dict | None = None) -> list[dict]:
        """One text query in ``mode`` (``q``: its embedding; None allowed in text mode). Every
        hit carries ``why``: ``{"semantic": score | None, "text": BM25 | None, "matched": [words],
        "fused": rank-fusion score | None}``; ``score`` is the semantic score."""
        from . import hybrid, textindex

        k = _check_k(k)
        if mode == "semantic":
            hits = self.search_vectors(q[None], k, texts=[text], allowed=allowed)[0]
            return [{**h, "why": {"semantic": h["score"], "text": None, "matched": [], "fused": None}} for h in hits]
        self.refresh()
        cand = max(100, 4 * k)
        w = check_where(where)
        filt = where_sql(w) if w else None
        thits = {t.id: t for t in textindex.search(self.store.con, text, cand if mode == "hybrid" else k, filt)}
        if mode == "text":
            order = [(i, t.score) for i, t in thits.items()]
            sem = self._semantic_scores(q, list(thits)) if q is not None else {}
            meta = self.store.items([i for i, _ in order])
            out = []
            for i, sc in order:
                if i in meta:
                    h = self._hit(meta[i], sem[i][0] if i in sem else None)
                    h["why"] = {"semantic": h["score"], "text": sc, "matched": thits[i].matched, "fused": None,
                                "coverage": thits[i].coverage, "exact": thits[i].exact}
                    out.append(h)
            return out
        vec = self._vector_groups(q[None], min(cand, MAX_K), allowed)[0]
        sem = {g["item"]: (g["score"], g["start"], g["end"]) for g in vec}
        wins = {g["item"]: g["window"] for g in vec}
        missing = [i for i in thits if i not in sem]
        sem.update(self._semantic_scores(q, missing))
        order = {i: -r for r, i in enumerate(thits)}  # textindex's ranking: coverage, then BM25
        fused = hybrid.fuse({i: v[0] for i, v in sem.items()}, order,
                            hybrid.TEXT_WEIGHT if text_weight is None else text_weight,
                            {i: t.coverage for i, t in thits.items()},
                            {i for i, t in thits.items() if t.exact})[:k]
        meta = self.store.items([i for i, *_ in fused])
        out = []
        for i, f, _, _ in fused:
            if i not in meta:
                continue
            sc, a, b = sem.get(i, (None, None, None))
            h = self._hit(meta[i], sc, a, b, wins.get(i))
            h["why"] = {"semantic": sc, "text": thits[i].score if i in thits else None,
                        "matched": thits[i].matched if i in thits else [], "fused": f,
                        "coverage": thits[i].coverage if i in thits else None,
                        "exact": thits[i].exact if i in thits else False}
            out.append(h)
        return self._refine(text, out)

    # --- queries ---------------------------------------------------------------------------
    def search_text(self, query: str, k: int = 10, rerank: int = 0, mode: str | None = None,
                    text_weight: float | None = None, where: dict | None = None, offset: int = 0) -> list[dict]:
        """Text -> items. ``mode``: semantic | text | hybrid (default: hybrid when the index
        has text, see :mod:`.hybrid`). ``rerank`` = k' > 0 (semantic mode): take the top-k'
        candidates from the index and re-score them with ``embedder.rerank`` (pair-wise
        scorer), when the embedder has one. ``where``: filters (:mod:`.filters`); ``offset``:
        skip the first hits (pagination)."""
        return self.search_batch([str(query)], k=k, rerank=rerank, mode=mode, text_weight=text_weight,
                                 where=where, offset=offset)[0]

    def search_audio(self, audio: str | Path | np.ndarray, k: int = 10, sample_rate: int | None = None,
                     where: dict | None = None, offset: int = 0) -> list[dict]:
        """Audio (file path or waveform at ``sample_rate``, default the embedder's) -> items."""
        k, offset = _check_page(k, offset)
        allowed = self._allowed(where)
        q = self._embed_audio([audio], sample_rate)
        hits = self.search_vectors(q, k + offset, allowed=allowed)[0]
        hits = [{**x, "why": {"semantic": x["score"], "text": None, "matched": [], "fused": None}} for x in hits]
        return self._judge(q[0], hits, calibrated=False)[offset:]

    def similar(self, item_id: int, k: int = 10, where: dict | None = None, offset: int = 0) -> list[dict] | None:
        """Items that sound like item ``item_id`` (its stored vector as the query), itself
        excluded; None if the id is unknown."""
        k, offset = _check_page(k, offset)
        allowed = self._allowed(where)
        emb = item_rows.embedding(self.store.con, item_id)
        if emb is None:
            return None
        if allowed is not None:
            allowed.discard(int(item_id))
        q = np.frombuffer(emb, np.float32)[None]
        hits = self.search_vectors(q, min(k + offset + 1, MAX_K), allowed=allowed)[0]
        hits = [{**x, "why": {"semantic": x["score"], "text": None, "matched": [], "fused": None}}
                for x in hits if x["id"] != int(item_id)]
        return self._judge(q[0], hits, calibrated=False)[offset:offset + k]

    def search_batch(self, queries: Sequence[Any], k: int = 10, rerank: int = 0, mode: str | None = None,
                     text_weight: float | None = None, where: dict | None = None, offset: int = 0) -> list[list[dict]]:
        """Many queries at once: ``str`` = text, ``Path``/``np.ndarray`` = audio, or a dict
        ``{"text": ...}`` / ``{"audio": path}``. Texts and audios are embedded in one batch each.
        ``mode`` applies to text queries (audio queries are always semantic). Text queries are
        checked by :func:`validate_query` (the server's check)."""
        from .hybrid import resolve_mode

        k, offset = _check_page(k, offset)
        rerank = int(rerank)
        if rerank < 0:
            raise ValueError(f"rerank must be >= 0, got {rerank}")
        allowed = self._allowed(where)
        kk = k + offset
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
                try:
                    texts.append((i, validate_query(q)))
                except ValueError as e:
                    raise ValueError(f"query {i}: {e}" if len(queries) > 1 else str(e)) from None
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
            if mode != "text":
                self._need_model(f"{mode} search")
            emb = None if self.embedder is None else np.asarray(self.embedder.embed_text([t for _, t in texts]),
                                                                 np.float32)
            if mode == "semantic":
                kq = max(kk, rerank) if rerank else kk
                hits = self.search_vectors(emb, kq, texts=[t for _, t in texts], allowed=allowed)
                for j, ((i, t), h) in enumerate(zip(texts, hits)):
                    h = self._rerank(t, h, kk) if rerank else h
                    h = [{**x, "why": {"semantic": x["score"], "text": None, "matched": [], "fused": None,
                                       **({"rerank": x["_rerank"]} if "_rerank" in x else {})}} for x in h]
                    for x in h:
                        x.pop("_rerank", None)
                    out[i] = self._judge(emb[j], h)
            else:
                for j, (i, t) in enumerate(texts):
                    h = self.search_modes(t, None if emb is None else emb[j], kk, mode, text_weight, allowed, where)
                    out[i] = self._judge(None if emb is None else emb[j], h)
        if audios:
            emb = self._embed_audio([a for _, a in audios], None)
            for j, ((i, _), h) in enumerate(zip(audios, self.search_vectors(emb, kk, allowed=allowed))):
                h = [{**x, "why": {"semantic": x["score"], "text": None, "matched": [], "fused": None}} for x in h]
                out[i] = self._judge(emb[j], h, calibrated=False)
        return [h[offset:] for h in out]

    def _rerank(self, text: str, hits: list[dict], k: int) -> list[dict]:
        """Re-order by the pair-wise scorer; ``score`` stays the semantic score (``_rerank``: the new one)."""
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
        finite = np.isfinite(scores)  # a NaN or inf from the scorer ranks last and is reported as None
        order = np.argsort(-np.where(finite, scores, -np.inf), kind="stable")[:k]
        return [{**hits[j], "index_score": hits[j]["score"], "_rerank": float(scores[j]) if finite[j] else None}
                for j in order]

    def _embed_audio(self, audios: list, sample_rate: int | None) -> np.ndarray:
        from ..audio.io import load_wave

        embedder = self._need_model("an audio query")
        sr = int(embedder.sample_rate)
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
        emb, _ = embedder.embed_audio(waves)
        return np.asarray(emb, np.float32)

    # --- metadata --------------------------------------------------------------------------
    def get(self, item_id: int) -> dict | None:
        """Metadata of one item (None if unknown)."""
        rows = self.store.items([int(item_id)])
        if not rows:
            return None
        r = rows[int(item_id)]
        hit = self._hit(r, None)
        hit.pop("score")
        hit.pop("confidence")
        return {**hit, "size": r["size"], "sha1": r["sha1"], "meta": r["meta"], "bias": r["bias"]}

    def peaks(self, ids: Sequence[int]) -> dict[int, str]:
        """Waveform overviews (base64 peaks) of ``ids`` that have one, for drawing hits."""
        from .peaks import get_many

        return get_many(self.store.con, [int(i) for i in ids])

    def stored_vectors(self) -> int:
        """Vectors the store says the backend should hold (files plus windows of long files),
        read from SQLite; unlike ``len(self)`` it costs no server round trip."""
        from . import moments

        return self.store.count() + moments.count(self.store.con)

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
            self._library = None


def _check_k(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 0 < int(k) <= MAX_K:
        raise ValueError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
    return int(k)


def _check_page(k: int, offset: int) -> tuple[int, int]:
    k = _check_k(k)
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or offset < 0 or k + int(offset) > MAX_K:
        raise ValueError(f"offset must be an integer >= 0 with offset + k <= {MAX_K}, got offset={offset!r}, k={k}")
    return k, int(offset)
