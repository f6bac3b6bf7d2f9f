"""Vector index and search (METHODS.md §8): build from a folder/corpus, search by text or
audio, FAISS or Milvus backends, SK/OT per-item bias folded in by one extra dimension."""
from __future__ import annotations

from .backends.base import BACKENDS, VectorBackend, build_backend, fold_items, fold_queries
from .captions import build_caption_index
from .embedder import Embedder, HashEmbedder, check_embedder
from .indexer import IndexReport, build_index
from .manifest import IndexMismatchError
from .search import Searcher
from .source import AUDIO_EXTENSIONS

__all__ = ["BACKENDS", "VectorBackend", "build_backend", "fold_items", "fold_queries",
           "build_caption_index", "Embedder", "HashEmbedder", "check_embedder", "IndexReport",
           "build_index", "IndexMismatchError", "Searcher", "AUDIO_EXTENSIONS"]
