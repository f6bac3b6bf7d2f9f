"""Vector backends (METHODS.md §5 bias folding, §8): FAISS vs brute force, FAISS vs Milvus Lite."""
from __future__ import annotations

import numpy as np
import pytest

from soundseek.index.backends.base import BACKENDS, build_backend, fold_items, fold_queries


def _data(n=400, d=24, q=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    qs = rng.standard_normal((q, d)).astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    return x, qs, rng.standard_normal(n).astype(np.float32)


def _brute(qs, x, bias, ids, k):
    s = qs.astype(np.float64) @ x.T.astype(np.float64) + (0 if bias is None else bias)
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return ids[top], np.take_along_axis(s, top, 1)


def test_fold_is_exact_inner_product_plus_bias():
    x, qs, b = _data()
    got = fold_queries(qs) @ fold_items(x, b).T
    want = qs @ x.T + b[None, :]
    assert np.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match="bias has 3 entries"):
        fold_items(x, b[:3])


@pytest.mark.parametrize("with_bias", [False, True])
def test_faiss_flat_matches_brute_force(with_bias):
    x, qs, b = _data()
    bias = b if with_bias else None
    ids = np.arange(len(x), dtype=np.int64) * 7 + 3
    be = build_backend("faiss", x.shape[1] + 1)
    be.add(ids, fold_items(x, bias))
    hits = be.search(fold_queries(qs), k=10)
    want_ids, want_s = _brute(qs, x, bias, ids, 10)
    for qi in range(len(qs)):  # loop reference vs batched search
        assert [h["id"] for h in hits[qi]] == want_ids[qi].tolist()
        assert np.allclose([h["score"] for h in hits[qi]], want_s[qi], atol=1e-5)


def test_faiss_add_replace_remove_save_load(tmp_path):
    x, qs, _ = _data(n=50, d=8)
    be = build_backend("faiss", 8)
    be.add(np.arange(50), x, metadata=[{"i": i} for i in range(50)])
    be.add(np.array([5]), -x[:1])  # replaces id 5, no duplicate
    assert len(be) == 50
    assert be.remove(np.array([1, 2, 999])) == 2 and len(be) == 48
    be.save(tmp_path / "v.faiss")
    be2 = type(be).load(tmp_path / "v.faiss")
    s1, i1 = be.search_arrays(qs, 5)
    s2, i2 = be2.search_arrays(qs, 5)
    assert (i1 == i2).all() and np.allclose(s1, s2)
    assert 1 not in set(i1.ravel().tolist())
    assert be2.search(qs[:1], 1)[0][0]["metadata"] == {"i": int(i1[0, 0])}
    assert be.search(qs, 1000)[0].__len__() == 48  # k larger than the index


def test_faiss_approximate_index_types_recall():
    x, qs, _ = _data(n=3000, d=16, q=20)
    ids = np.arange(len(x))
    want, _ = _brute(qs, x, None, ids, 10)
    for kind in ("hnsw", "ivf"):
        be = build_backend("faiss", 16, index_type=kind, nprobe=32)
        be.add(ids, x)
        _, got = be.search_arrays(qs, 10)
        recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got.tolist(), want.tolist())])
        assert recall > 0.9, (kind, recall)
    assert build_backend("faiss", 16, index_type="auto", expected_size=10).index_type == "flat"
    assert build_backend("faiss", 16, index_type="auto", expected_size=2_000_000).index_type == "hnsw"


def test_bad_names_and_shapes():
    with pytest.raises(KeyError, match="Valid: faiss, milvus"):
        build_backend("annoy", 8)
    with pytest.raises(ValueError, match="Valid: flat, hnsw, ivf, auto"):
        build_backend("faiss", 8, index_type="lsh")
    be = build_backend("faiss", 8)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        be.add(np.arange(2), np.zeros((2, 9), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        be.add(np.arange(1), np.full((1, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="k must be positive"):
        be.search(np.zeros((1, 8), np.float32), 0)
    assert "faiss" in BACKENDS and "milvus" in BACKENDS


def _milvus_available() -> str | None:
    try:
        import milvus_lite  # noqa: F401
        import pymilvus  # noqa: F401
    except ImportError as e:
        return f"pymilvus / milvus-lite not installed ({e})"
    return None


@pytest.mark.skipif(_milvus_available() is not None, reason=str(_milvus_available()))
@pytest.mark.parametrize("with_bias", [False, True])
def test_faiss_and_milvus_lite_agree(tmp_path, with_bias):
    x, qs, b = _data(n=500, d=32, q=9, seed=1)
    bias = b if with_bias else None
    ids = np.arange(len(x), dtype=np.int64) * 3 + 1
    f = build_backend("faiss", 33)
    m = build_backend("milvus", 33, uri=str(tmp_path / "m.db"), collection="t")
    for be in (f, m):
        be.add(ids, fold_items(x, bias))
    sf_, if_ = f.search_arrays(fold_queries(qs), 10)
    sm, im = m.search_arrays(fold_queries(qs), 10)
    want_ids, want_s = _brute(qs, x, bias, ids, 10)
    assert (if_ == im).all() and (im == want_ids).all()
    assert np.abs(sf_ - sm).max() < 1e-5 and np.abs(sm - want_s).max() < 1e-5
    # removal and replacement behave the same
    for be in (f, m):
        be.remove(ids[:5])
        be.add(ids[5:6], fold_items(-x[5:6], None if bias is None else bias[5:6]))
    assert len(f) == len(m) == len(x) - 5
    _, if2 = f.search_arrays(fold_queries(qs), 10)
    _, im2 = m.search_arrays(fold_queries(qs), 10)
    assert (if2 == im2).all()
    m.close()
    m2 = type(m).load(uri=str(tmp_path / "m.db"), collection="t")
    assert len(m2) == len(x) - 5 and m2.dim == 33


def test_importing_the_interface_registers_every_backend():
    """base.py knows no backend; importing it (through its package) registers both anyway."""
    import subprocess
    import sys

    code = ("from soundseek.index.backends.base import BACKENDS\n"
            "assert BACKENDS.names() == ['faiss', 'milvus'], BACKENDS.names()\n"
            "import sys; assert 'faiss' not in sys.modules and 'pymilvus' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
