"""FAISS backend: exact inner product (``IndexFlatIP``) by default, HNSW / IVF by name.

Every index is wrapped in ``IndexIDMap2`` so items carry our int64 ids. Suggested choice:
``flat`` (exact; default, fine to ~1M x 512 on a laptop), ``hnsw`` or ``ivf`` above ~1M
(approximate), ``auto`` = flat below ``auto_threshold`` items (``expected_size``) else hnsw.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ...fileio import atomic_replace_via, atomic_write_text
from .base import BACKENDS, VectorBackend

INDEX_TYPES = ("flat", "hnsw", "ivf", "auto")


def _faiss():
    try:
        import faiss  # type: ignore
    except ImportError as e:  # pragma: no cover
        raise ImportError("The faiss backend needs faiss-cpu: pip install faiss-cpu") from e
    return faiss


@BACKENDS.register("faiss")
class FaissBackend(VectorBackend):
    """In-process FAISS index.

    Args:
        dim: vector width.
        index_type: flat | hnsw | ivf | auto.
        hnsw_m: HNSW graph degree; ef_search / ef_construction: HNSW beam widths.
        nlist: IVF cells (default 4 sqrt(n) at training time); nprobe: cells visited per query.
        expected_size: number of items (decides ``auto``); auto_threshold: flat below this.
        path: default file for :meth:`save`.
    """

    name = "faiss"

    def __init__(self, dim: int, index_type: str = "flat", hnsw_m: int = 32, ef_search: int = 128,
                 ef_construction: int = 200, nlist: int | None = None, nprobe: int = 16,
                 expected_size: int | None = None, auto_threshold: int = 1_000_000,
                 path: str | Path | None = None) -> None:
        super().__init__(dim)
        if index_type not in INDEX_TYPES:
            raise ValueError(f"Invalid faiss index_type {index_type!r}. Valid: {', '.join(INDEX_TYPES)}")
        if index_type == "auto":
            index_type = "hnsw" if (expected_size or 0) >= auto_threshold else "flat"
        self.index_type = index_type
        self.opts = dict(hnsw_m=hnsw_m, ef_search=ef_search, ef_construction=ef_construction,
                         nlist=nlist, nprobe=nprobe)
        self.path = Path(path) if path is not None else None
        self._meta: dict[int, dict] = {}
        self.index = self._new_index() if index_type != "ivf" else None  # IVF: built when trained

    def _new_index(self, train: np.ndarray | None = None):
        faiss = _faiss()
        o = self.opts
        if self.index_type == "flat":
            inner = faiss.IndexFlatIP(self.dim)
        elif self.index_type == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, int(o["hnsw_m"]), faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = int(o["ef_construction"])
            inner.hnsw.efSearch = int(o["ef_search"])
        else:
            assert train is not None
            nlist = int(o["nlist"] or max(1, min(int(4 * math.sqrt(len(train))), len(train) // 39 or 1)))
            quant = faiss.IndexFlatIP(self.dim)
            inner = faiss.IndexIVFFlat(quant, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            inner.train(train)
            inner.nprobe = int(o["nprobe"])
            self._quantizer = quant  # keep a Python reference alive
            self.opts["nlist"] = nlist
        self._inner = inner
        return faiss.IndexIDMap2(inner)

    def _ids(self) -> np.ndarray:
        if self.index is None or self.index.ntotal == 0:
            return np.zeros(0, np.int64)
        return _faiss().vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        v = self._check(vectors, "vectors")
        if len(ids) != len(v) or len(np.unique(ids)) != len(ids):
            raise ValueError(f"need one distinct id per vector, got {len(ids)} ids for {len(v)} vectors")
        if len(ids) == 0:
            return
        if self.index is None:  # untrained IVF
            self.index = self._new_index(train=v)
        present = ids[np.isin(ids, self._ids())]
        if len(present):
            self.remove(present)
        self.index.add_with_ids(v, ids)
        if metadata is not None:
            self._meta.update({int(i): dict(m) for i, m in zip(ids, metadata)})

    def remove(self, ids: np.ndarray) -> int:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        if self.index is None or len(ids) == 0:
            return 0
        if self.index_type == "hnsw":
            raise NotImplementedError("faiss HNSW cannot delete items; rebuild the index from its store")
        for i in ids.tolist():
            self._meta.pop(int(i), None)
        return int(self.index.remove_ids(_faiss().IDSelectorBatch(ids)))

    def search_arrays(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = self._check(queries, "queries")
        n = len(self)
        kk = min(int(k), n)
        if kk == 0 or len(q) == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, ids = self.index.search(q, kk)
        return scores, ids

    def metadata(self, ids: list[int]) -> list[dict]:
        return [self._meta.get(int(i), {}) for i in ids]

    def __len__(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def save(self, path: str | Path | None = None) -> None:
        """Write ``path`` and ``path.meta.json`` via temp files + ``os.replace`` (atomic each)."""
        faiss = _faiss()
        path = Path(path or self.path or "")
        if not path.name:
            raise ValueError("FaissBackend.save needs a path")
        index = self.index if self.index is not None else self._new_index_placeholder()
        atomic_replace_via(path, lambda tmp: faiss.write_index(index, str(tmp)))
        meta = {"index_type": self.index_type, "dim": self.dim, "opts": self.opts,
                "metadata": {str(k): v for k, v in self._meta.items()}}
        atomic_write_text(Path(str(path) + ".meta.json"), json.dumps(meta))
        self.path = path

    def _new_index_placeholder(self):
        faiss = _faiss()
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    @classmethod
    def load(cls, path: str | Path | None = None, **options: Any) -> "FaissBackend":
        faiss = _faiss()
        if path is None:
            raise ValueError("FaissBackend.load needs a path")
        path = Path(path)
        meta_path = Path(str(path) + ".meta.json")
        if not path.is_file() or not meta_path.is_file():
            raise FileNotFoundError(f"No faiss index at {path} (or its .meta.json)")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        opts = {**meta.get("opts", {}), **{k: v for k, v in options.items() if k in meta.get("opts", {})}}
        self = cls.__new__(cls)
        VectorBackend.__init__(self, meta["dim"])
        self.index_type, self.opts, self.path = meta["index_type"], opts, path
        self._meta = {int(k): v for k, v in meta.get("metadata", {}).items()}
        self.index = faiss.read_index(str(path))
        if self.index.ntotal == 0 and self.index_type == "ivf":
            self.index = None
        else:
            self._inner = faiss.downcast_index(self.index.index)
            if self.index_type == "hnsw":
                self._inner.hnsw.efSearch = int(opts["ef_search"])
            elif self.index_type == "ivf":
                self._inner.nprobe = int(opts["nprobe"])
        return self

