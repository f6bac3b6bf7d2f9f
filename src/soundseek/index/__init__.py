"""Vector index and search (METHODS.md §8): build from a folder/corpus, search by text or
audio, FAISS or Milvus backends, SK/OT per-item bias folded in by one extra dimension.

Names are imported on first use, so ``soundseek search --server`` (which needs none of them)
starts without numpy, SQLite or FAISS."""
from __future__ import annotations

import importlib

_WHERE = {
    "BACKENDS": ".backends.base", "VectorBackend": ".backends.base", "build_backend": ".backends.base",
    "fold_items": ".backends.base", "fold_queries": ".backends.base", "build_caption_index": ".captions",
    "Embedder": ".embedder", "HashEmbedder": ".embedder", "check_embedder": ".embedder",
    "IndexReport": ".indexer", "build_index": ".indexer", "IndexMismatchError": ".manifest",
    "Searcher": ".search", "AUDIO_EXTENSIONS": ".source", "Index": ".api",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
