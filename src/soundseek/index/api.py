"""``soundseek.Index``: the index as a Python object, for scripts and notebooks.

    import soundseek
    idx = soundseek.Index.open("my.index")          # loads the model recorded in the index
    for hit in idx.search("rain on a tin roof", k=10):
        print(hit["score"], hit["path"], hit["start"], hit["end"], hit["why"]["matched"])
    idx.search("sounds/ref.wav")                     # query by example (a Path, str path or waveform)
    idx.similar(hit["id"], k=5)

A thin layer over :class:`~soundseek.index.search.Searcher` (same hits, same options).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .search import Searcher
from .source import AUDIO_EXTENSIONS

__all__ = ["Index"]


class Index:
    """An open search index. Use :meth:`open` (existing index) or :meth:`build` (index a folder)."""

    def __init__(self, searcher: Searcher) -> None:
        from .live import LiveSearcher

        self.searcher = searcher if isinstance(searcher, LiveSearcher) else LiveSearcher(searcher)  # follows rebuilds

    @classmethod
    def open(cls, path: str | Path, model: str | Path | None = None, embedder: Any = None) -> "Index":
        """Open the index at ``path`` with ``embedder``, or the model ``model``, or the model
        recorded in the index (the shipped default model when none was recorded)."""
        try:
            return cls(Searcher.open(path, model=model, embedder=embedder))
        except FileNotFoundError as e:
            raise FileNotFoundError(f"{e} (from Python: soundseek.Index.build(folder, path))") from None

    @classmethod
    def build(cls, source: str | Path, path: str | Path, model: str | Path | None = None, embedder: Any = None,
              **options: Any) -> "Index":
        """Index (or update the index of) ``source`` into ``path`` and open it; ``options`` go
        to :func:`~soundseek.index.build_index` (``progress``, ``window``, ``hop``, ...)."""
        from .indexer import build_index

        if embedder is None:
            from ..pipeline import Pipeline

            embedder = Pipeline.load(model)
        build_index(source, embedder, path, model=None if model is None else str(model), **options)
        return cls(Searcher.open(path, embedder=embedder))

    def search(self, query: str | Path | np.ndarray, k: int = 10, mode: str | None = None,
               sample_rate: int | None = None, text_weight: float | None = None, where: dict | None = None,
               offset: int = 0) -> list[dict]:
        """Hits for a text query (``mode`` semantic | text | hybrid, default hybrid when the
        index has text) or an audio query: a ``Path``, a string naming an existing audio file,
        or a waveform (``sample_rate``, default the model's). ``where``: filters such as
        ``{"max_duration": 2.0, "format": "wav", "folder": "doors"}`` (:data:`~soundseek.index.filters.FILTER_KEYS`);
        ``offset``: skip that many hits (pagination). Each hit has ``confidence``
        (strong | possible | weak); :func:`soundseek.index.calibration.verdict` words a weak list."""
        if isinstance(query, np.ndarray):
            return self.searcher.search_audio(query, k=k, sample_rate=sample_rate, where=where, offset=offset)
        if isinstance(query, Path) or (isinstance(query, str) and query.lower().endswith(AUDIO_EXTENSIONS)
                                       and Path(query).is_file()):
            return self.searcher.search_audio(Path(query), k=k, where=where, offset=offset)
        if not isinstance(query, str):
            raise TypeError(f"query must be a str, Path or numpy waveform, got {type(query).__name__}")
        return self.searcher.search_text(query, k=k, mode=mode, text_weight=text_weight, where=where, offset=offset)

    def count(self, where: dict | None = None) -> int:
        """Files in the index passing ``where`` (all files by default)."""
        return self.searcher.count(where)

    def similar(self, item_id: int, k: int = 10, where: dict | None = None, offset: int = 0) -> list[dict]:
        """Items that sound like item ``item_id`` (itself excluded)."""
        hits = self.searcher.similar(item_id, k, where=where, offset=offset)
        if hits is None:
            raise KeyError(f"no item with id {item_id} in {self.searcher.index_dir}")
        return hits

    def get(self, item_id: int) -> dict | None:
        return self.searcher.get(item_id)

    def __len__(self) -> int:
        return self.searcher.store.count()

    def __repr__(self) -> str:
        return f"Index({str(self.searcher.index_dir)!r}, {len(self)} items)"
