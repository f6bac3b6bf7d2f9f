"""Caption index for audio -> text search (METHODS.md §5 SK correction, §8).

Items are the text embeddings of captions; an optional per-caption bias ``beta_j`` (the
Sinkhorn-Knopp correction, or an OT column scaling ``log v_j``) is folded into the index by
the extra dimension, so an audio query ranks captions by ``q . t_j + beta_j`` exactly. Scale
convention: pass the bias in the units of the similarity, i.e. ``tau * beta_j`` when the
correction was computed on ``R / tau + beta`` (ranking is the same).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .embedder import check_embedder
from .indexer import IndexReport, _init_index
from .manifest import IndexLock, open_backend
from .store import items as item_rows

__all__ = ["build_caption_index"]


def build_caption_index(captions: Sequence[str] | Any, embedder: Any, index_dir: str | Path,
                        bias: Sequence[float] | np.ndarray | None = None, keys: Sequence[str] | None = None,
                        backend: str = "faiss", backend_options: dict | None = None, batch_size: int = 256,
                        rebuild: bool = False) -> IndexReport:
    """Index caption texts (incremental: unchanged (key, text) pairs are not re-embedded).

    Args:
        captions: list of strings, or a :class:`~soundseek.data.types.Corpus` (every caption of
            every clip; key ``"{clip.id}#{j}"``, hits carry ``clip``).
        bias: (n_captions,) additive bias per caption, aligned with the caption order (None: 0).
        keys: stable ids per caption (default: ``"#{i}"``); needed for incremental updates.
    Returns:
        :class:`IndexReport`.
    """
    t0 = time.time()
    check_embedder(embedder)
    index_dir = Path(index_dir)
    if hasattr(captions, "clips"):
        texts, owners, ks = [], [], []
        for c in captions.clips:
            for j, t in enumerate(c.captions):
                texts.append(str(t)); owners.append(str(c.id)); ks.append(f"{c.id}#{j}")
    else:
        texts = [str(t) for t in captions]
        owners = [None] * len(texts)
        ks = [f"#{i}" for i in range(len(texts))]
    if keys is not None:
        if len(keys) != len(texts) or len(set(keys)) != len(keys):
            raise ValueError(f"keys must be {len(texts)} distinct strings, got {len(keys)} ({len(set(keys))} distinct)")
        ks = [str(k) for k in keys]
    b = np.zeros(len(texts), np.float32) if bias is None else np.asarray(bias, np.float32).reshape(-1)
    if b.shape[0] != len(texts) or not np.isfinite(b).all():
        raise ValueError(f"bias must be {len(texts)} finite numbers, got shape {b.shape}")
    report = IndexReport(str(index_dir))
    index_dir.mkdir(parents=True, exist_ok=True)
    with IndexLock(index_dir):
        store = _init_index(index_dir, embedder, backend, dict(backend_options or {}), rebuild, "captions", {})
        known = store.known()
        present = set(ks)
        gone = [k for k in known if k not in present]
        todo, bias_only = [], []
        for i, (k, t) in enumerate(zip(ks, texts)):
            h = hashlib.sha1(t.encode("utf-8")).hexdigest()
            row = known.get(k)
            if row is None or row["sha1"] != h:
                todo.append((i, h, row))
            else:
                bias_only.append((row["id"], float(b[i])))
        with store.transaction() as con:
            g = store.bump(con)
            for k in gone:
                item_rows.remove(con, known[k]["id"], g)
            for item_id, bi in bias_only:  # re-stamp only rows whose bias changed
                item_rows.restamp_bias(con, item_id, bi, g)
        report.removed, report.unchanged = len(gone), len(bias_only)
        for s in range(0, len(todo), batch_size):
            part = todo[s:s + batch_size]
            emb = np.asarray(embedder.embed_text([texts[i] for i, _, _ in part]), np.float32)
            if emb.shape != (len(part), int(embedder.dim)) or not np.isfinite(emb).all():
                raise ValueError(f"embed_text returned shape {emb.shape} or non-finite values")
            with store.transaction() as con:
                g = store.bump(con)
                for (i, h, row), e in zip(part, emb):
                    vals = (json.dumps([texts[i]]), h, owners[i], float(b[i]), e.tobytes(), g)
                    if row is None:
                        item_rows.insert_caption(con, ks[i], vals)
                        report.added += 1
                    else:
                        item_rows.update_caption(con, row["id"], vals)
                        report.updated += 1
        from .manifest import read_manifest

        open_backend(index_dir, store, read_manifest(index_dir) or {}, save=True)
        report.total, report.seconds = store.count(), time.time() - t0
        store.log("info", report.summary())
        store.close()
    return report
