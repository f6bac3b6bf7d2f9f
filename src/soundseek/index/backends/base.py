"""The small interface every vector backend implements, and the bias-folding helpers.

A backend stores (int64 id, float32 vector) items and answers exact or approximate
*inner-product* top-k queries. Scores are similarities (higher = better).

Per-item additive bias (METHODS.md §5 last bullet, §8): ranking by ``q . x_i + b_i`` is an
inner-product search over items ``[x_i, b_i]`` with queries ``[q, 1]`` — :func:`fold_items`
and :func:`fold_queries` build those, exactly, for any backend.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from ...registry import Registry

__all__ = ["VectorBackend", "BACKENDS", "build_backend", "fold_items", "fold_queries", "Hit"]

Hit = dict[str, Any]  # {"id": int, "score": float, "metadata": dict}

BACKENDS: Registry[type["VectorBackend"]] = Registry("backend")


def fold_items(vectors: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """(n, d) vectors, (n,) bias (None: zeros) -> (n, d + 1) float32 items ``[x_i, b_i]``."""
    v = np.asarray(vectors, dtype=np.float32)
    b = np.zeros(len(v), np.float32) if bias is None else np.asarray(bias, dtype=np.float32).reshape(-1)
    if b.shape[0] != v.shape[0]:
        raise ValueError(f"bias has {b.shape[0]} entries for {v.shape[0]} vectors")
    return np.ascontiguousarray(np.concatenate([v, b[:, None]], axis=1))


def fold_queries(queries: np.ndarray) -> np.ndarray:
    """(q, d) queries -> (q, d + 1) float32 ``[q, 1]`` so ``[q, 1] . [x, b] = q . x + b``."""
    q = np.asarray(queries, dtype=np.float32)
    return np.ascontiguousarray(np.concatenate([q, np.ones((len(q), 1), np.float32)], axis=1))


class VectorBackend(ABC):
    """id -> vector store with inner-product top-k search.

    Args:
        dim: vector width (including a folded bias column, if any).
    """

    name = "base"

    def __init__(self, dim: int) -> None:
        if int(dim) <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = int(dim)

    # --- required -------------------------------------------------------------------------
    @abstractmethod
    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        """Insert (or replace) items. ids (n,) int64, vectors (n, dim) float32."""

    @abstractmethod
    def remove(self, ids: np.ndarray) -> int:
        """Delete items by id (unknown ids are ignored); returns how many were removed."""

    @abstractmethod
    def search_arrays(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, dim) -> (scores (q, k') float32, ids (q, k') int64), k' = min(k, len)."""

    @abstractmethod
    def save(self, path: str | Path | None = None) -> None:
        """Persist (atomically where the storage allows)."""

    @classmethod
    @abstractmethod
    def load(cls, path: str | Path | None = None, **options: Any) -> "VectorBackend":
        """Open a persisted backend."""

    @abstractmethod
    def __len__(self) -> int: ...

    # --- shared ---------------------------------------------------------------------------
    def metadata(self, ids: list[int]) -> list[dict]:
        """Per-id metadata given to :meth:`add` ({} if none)."""
        return [{} for _ in ids]

    def _check(self, vectors: np.ndarray, what: str) -> np.ndarray:
        v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise ValueError(f"{what} must have shape (n, {self.dim}), got {tuple(v.shape)}")
        if not np.isfinite(v).all():
            raise ValueError(f"{what} contain NaN or Inf")
        return v

    def search(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Plain hits, best first: ``[[{"id", "score", "metadata"}, ...] per query]``."""
        if int(k) <= 0:
            raise ValueError(f"k must be positive, got {k}")
        scores, ids = self.search_arrays(queries, int(k))
        out = []
        for srow, irow in zip(scores, ids):
            keep = irow >= 0
            ilist = irow[keep].tolist()
            meta = self.metadata(ilist)
            out.append([{"id": i, "score": float(s), "metadata": m}
                        for i, s, m in zip(ilist, srow[keep].tolist(), meta)])
        return out


def build_backend(name: str, dim: int, **options: Any) -> VectorBackend:
    """Instantiate backend ``name`` (``faiss`` | ``milvus``); unknown names list the valid ones.

    The backends register themselves when the ``backends`` package is imported."""
    return BACKENDS.get(name)(dim, **options)
