"""A searcher picking up an indexer's changes never writes a shared Milvus collection: it
keeps answering from the collection as it is until the indexer has synced it."""
from __future__ import annotations

import pytest
import soundfile as sf

from index_helpers import SR, make_audio_folder, tone
from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index import indexer
from soundseek.index.manifest import BackendBehind, open_backend, read_manifest


def test_refresh_waits_for_the_indexer_to_sync_the_collection(tmp_path, monkeypatch):
    pytest.importorskip("milvus_lite", reason="milvus-lite not installed")
    root = tmp_path / "sounds"
    make_audio_folder(root, n=4, bad=False)
    idx = tmp_path / "idx"
    build_index(root, HashEmbedder(), idx, backend="milvus", progress=False, window=0)
    s = Searcher(idx, HashEmbedder())
    before = len(s.backend)
    # an indexer that has committed new clips to the index but not yet synced the collection
    sf.write(root / "new.wav", tone(3100.0, 0.5, seed=9), SR)
    with monkeypatch.context() as m:
        m.setattr(indexer, "open_backend", lambda *a, **k: None)
        build_index(root, HashEmbedder(), idx, backend="milvus", progress=False, window=0)
    writes = []
    for name in ("add", "remove"):
        real = getattr(type(s.backend), name)
        monkeypatch.setattr(type(s.backend), name, lambda self, *a, _r=real, _n=name, **k: (writes.append(_n), _r(self, *a, **k))[1])
    assert s.refresh(every=0) is False  # the collection lags: not written by the searcher
    assert writes == [] and len(s.backend) == before
    with pytest.raises(BackendBehind):
        open_backend(idx, s.store, read_manifest(idx), save=False, write_shared=False)
    assert s.search_text("x", k=before + 5, mode="semantic")  # still answers from the old collection
    monkeypatch.undo()
    open_backend(idx, s.store, read_manifest(idx), save=True)  # the indexer finishes: it syncs
    assert s.refresh(every=0) is True and len(s.backend) == before + 1
    assert s.search_audio(root / "new.wav", k=1)[0]["path"] == "new.wav"
