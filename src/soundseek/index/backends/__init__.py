"""Vector backends: the interface and registry in :mod:`.base`, one module per backend.

Importing this package (which any import of ``soundseek.index.backends.<module>`` does first)
registers every backend in :data:`~.base.BACKENDS`, so ``base`` needs to know none of them.
Neither backend module imports its client library (FAISS, pymilvus) before it is used.
"""
from __future__ import annotations

from .base import BACKENDS, Hit, VectorBackend, build_backend, fold_items, fold_queries
from . import faiss_backend, milvus_backend  # noqa: F401,E402  (register "faiss" and "milvus")

__all__ = ["VectorBackend", "BACKENDS", "build_backend", "fold_items", "fold_queries", "Hit"]
