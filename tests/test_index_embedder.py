"""The fake embedder and the frame store used by the index tests."""
from __future__ import annotations

import numpy as np
import pytest

from index_helpers import tone
from soundseek.index import Embedder, HashEmbedder, check_embedder
from soundseek.index.store import FrameStore


def test_hash_embedder_protocol_and_determinism():
    e = HashEmbedder(dim=32)
    assert isinstance(e, Embedder)
    check_embedder(e)
    with pytest.raises(TypeError, match="missing .*rerank"):
        check_embedder(object())
    waves = [tone(200.0), tone(210.0, seed=5), tone(3000.0)]
    emb, frames = e.embed_audio(waves)
    assert emb.shape == (3, 32) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert len(frames) == 3 and frames[0].shape[1] == e.n_bands
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # similar audio -> similar embedding
    emb2, _ = HashEmbedder(dim=32).embed_audio(waves)
    assert np.array_equal(emb, emb2)
    t = e.embed_text(["dog barking", "dog barking", "rain on a roof", ""])
    assert np.allclose(t[0], t[1]) and not np.allclose(t[0], t[2]) and np.isfinite(t).all()
    assert HashEmbedder(seed=1).fingerprint() != e.fingerprint()
    r = e.rerank("low hum", frames)
    assert r.shape == (3,) and np.isfinite(r).all()


def test_frame_store_roundtrip_and_chunk_rotation(tmp_path):
    fs = FrameStore(tmp_path, chunk_bytes=1000)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((int(rng.integers(1, 20)), 8)).astype(np.float16 if i % 2 else np.float32)
              for i in range(30)]
    refs = fs.append(arrays[:10]) + fs.append(arrays[10:])
    assert len({r[0] for r in refs}) > 1  # rotated over several chunk files
    for a, r in zip(arrays, refs):
        assert np.array_equal(FrameStore(tmp_path).read(*r), a) and fs.read(*r).dtype == a.dtype
