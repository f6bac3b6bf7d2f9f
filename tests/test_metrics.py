"""Tests of soundseek.metrics against slow per-query loops written here and hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soundseek.metrics import a2t, evaluate, modality_gap, multi_positive_map, t2a, zero_shot


# ---- slow references: one query at a time, ranks from a stable sort (Mei et al.'s loops) ----
def _order(row: np.ndarray) -> np.ndarray:
    return np.argsort(-row, kind="stable")  # equal scores: earlier candidate first


def _summary(rank0: list[int], ap: list[float]) -> dict[str, float]:
    r = np.asarray(rank0)
    out = {f"R{k}": float(np.mean(r < k)) for k in (1, 5, 10, 50)}
    out.update(mAP10=float(np.mean(ap)), medR=float(math.floor(np.median(r)) + 1), meanR=float(r.mean() + 1))
    return out


def slow_t2a(S: np.ndarray, ca: np.ndarray) -> dict[str, float]:
    rank0, ap = [], []
    for i in range(S.shape[0]):
        r = int(np.where(_order(S[i]) == ca[i])[0][0])
        rank0.append(r)
        ap.append(1.0 / (r + 1) if r < 10 else 0.0)
    return _summary(rank0, ap)


def slow_a2t(S: np.ndarray, ca: np.ndarray) -> dict[str, float]:
    rank0, ap = [], []
    for clip in range(S.shape[0]):
        order = _order(S[clip])
        relevant = np.where(ca == clip)[0]
        pos = sorted(int(np.where(order == k)[0][0]) for k in relevant)
        rank0.append(pos[0])
        within = [p + 1 for p in pos if p < 10]
        ap.append(sum((i + 1) / r for i, r in enumerate(within)) / len(relevant))
    return _summary(rank0, ap)


def _random_case(seed: int, n_clips: int, quantize: float | None):
    rng = np.random.default_rng(seed)
    per_clip = rng.integers(1, 7, size=n_clips)  # 1..6 captions per clip
    ca = rng.permutation(np.repeat(np.arange(n_clips), per_clip))  # captions in random order
    S = rng.standard_normal((ca.size, n_clips))
    if quantize:
        S = np.round(S / quantize) * quantize  # many ties
    return S, ca


@pytest.mark.parametrize("seed,n_clips,quantize", [(0, 30, None), (1, 60, 0.5), (2, 25, 2.0), (3, 120, 0.25)])
def test_matches_slow_loop(seed, n_clips, quantize):
    S, ca = _random_case(seed, n_clips, quantize)
    for fast, slow, X in ((t2a, slow_t2a, S), (a2t, slow_a2t, S.T.copy())):
        got, want = fast(X, ca), slow(X, ca)
        assert set(got) == {"R1", "R5", "R10", "R50", "mAP10", "medR", "meanR"}
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-12), (fast.__name__, key)


def test_many_captions_per_clip_use_unequal_layout():
    rng = np.random.default_rng(5)
    ca = np.concatenate([np.zeros(40, dtype=int), np.arange(1, 30)])  # one clip with 40 captions
    S = np.round(rng.standard_normal((30, ca.size)), 1)
    got, want = a2t(S, ca), slow_a2t(S, ca)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12)


def test_torch_and_numpy_inputs_agree():
    S, ca = _random_case(7, 40, 0.5)
    assert t2a(torch.from_numpy(S).float(), torch.from_numpy(ca)) == t2a(S.astype(np.float32), ca)
    both = evaluate(S, ca)
    assert both["a2t"] == a2t(S.T, ca) and both["t2a"] == t2a(S, ca)


def test_t2a_hand_computed():
    S = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]]
    out, ranks = t2a(S, [0, 1, 1], return_ranks=True)
    assert ranks.tolist() == [1, 1, 2]
    assert out["R1"] == pytest.approx(2 / 3) and out["R5"] == 1.0
    assert out["mAP10"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert out["medR"] == 1.0 and out["meanR"] == pytest.approx(4 / 3)


def test_a2t_hand_computed():
    # captions 0, 2 belong to clip 0; captions 1, 3 to clip 1
    S = [[0.1, 0.9, 0.5, 0.7],  # clip 0 ranks: c1, c3, c2, c0 -> relevant at 3, 4
         [0.8, 0.85, 0.8, 0.1]]  # clip 1: c1, c0, c2 (tie with c0, later), c3 -> relevant at 1, 4
    out, best = a2t(S, [0, 1, 0, 1], return_ranks=True)
    assert best.tolist() == [3, 1]
    assert out["mAP10"] == pytest.approx(((1 / 3 + 2 / 4) / 2 + (1 / 1 + 2 / 4) / 2) / 2)
    assert out["R1"] == 0.5 and out["R5"] == 1.0
    assert out["medR"] == 2.0 and out["meanR"] == 2.0


def test_a2t_ap_divides_by_all_relevant():
    # clip 0 has 12 captions; only one of them is within the top 10 (at rank 1)
    n_cap = 30
    ca = np.array([0] * 12 + [1] * 18)
    S = np.zeros((2, n_cap))
    S[0] = -np.arange(n_cap)  # ranks follow caption order...
    S[0, :12] -= 100  # ...but clip 0's captions sink to the bottom
    S[0, 5] = 0.5  # except caption 5, now ranked first
    S[1] = np.arange(n_cap)
    out = a2t(S, ca)
    ap0 = (1 / 1) / 12
    ap1 = sum(i / r for i, r in enumerate(range(1, 11), start=1)) / 18  # its captions take ranks 1..10
    assert out["mAP10"] == pytest.approx((ap0 + ap1) / 2)


def test_ties_rank_by_candidate_order():
    S = np.full((3, 3), 0.5)
    _, ranks = t2a(S, [0, 2, 1], return_ranks=True)
    assert ranks.tolist() == [1, 3, 2]


def test_clotho_size_is_fast():
    import time

    rng = np.random.default_rng(0)
    ca = np.repeat(np.arange(1045), 5)
    S = rng.standard_normal((ca.size, 1045)).astype(np.float32)
    t0 = time.perf_counter()
    t2a(S, ca), a2t(S.T.copy(), ca)
    assert time.perf_counter() - t0 < 2.0  # typically ~0.1 s; generous for a loaded CI machine


def test_bad_inputs():
    S = np.random.default_rng(0).random((4, 3))
    with pytest.raises(ValueError, match="caption_audio must be 1-D of length 4"):
        t2a(S, [0, 1, 2])
    with pytest.raises(ValueError, match=r"values must be in \[0, 3\)"):
        t2a(S, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="integer indices"):
        t2a(S, [0.0, 1.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="have no caption"):
        a2t(S.T, [0, 1, 1, 0])  # clip 2 has none
    bad = S.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        t2a(bad, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="2-D matrix"):
        t2a(S[0], [0])


# ---- multi-positive mAP@k ----
def slow_map(S: np.ndarray, rel: np.ndarray, k: int) -> float:
    aps = []
    for q in range(S.shape[0]):
        order = _order(S[q])[:k]
        hits, total = 0, 0.0
        for r, c in enumerate(order, start=1):
            if rel[q, c]:
                hits += 1
                total += hits / r
        aps.append(total / min(rel[q].sum(), k))
    return float(np.mean(aps))


@pytest.mark.parametrize("k", [1, 5, 16, 100])
def test_multi_positive_map_matches_loop(k):
    rng = np.random.default_rng(k)
    S = np.round(rng.standard_normal((50, 40)), 1)
    rel = rng.random((50, 40)) < 0.2
    rel[np.arange(50), rng.integers(0, 40, 50)] = True
    assert multi_positive_map(S, rel, k=k) == pytest.approx(slow_map(S, rel, k), abs=1e-12)
    assert multi_positive_map(torch.from_numpy(S), torch.from_numpy(rel), k=k) == pytest.approx(slow_map(S, rel, k))


def test_multi_positive_map_hand_and_errors():
    # ranking c0 c1 c2 c3; relevant c1, c3 -> (1/2 + 2/4) / 2
    assert multi_positive_map([[4.0, 3.0, 2.0, 1.0]], [[0, 1, 0, 1]], k=16) == pytest.approx(0.5)
    perfect = multi_positive_map([[4.0, 3.0, 2.0, 1.0]], [[1, 1, 1, 1]], k=2)
    assert perfect == 1.0  # divided by min(n_rel, k)
    with pytest.raises(ValueError, match="no relevant candidate"):
        multi_positive_map([[1.0, 2.0]], [[False, False]])
    with pytest.raises(ValueError, match="must equal scores shape"):
        multi_positive_map([[1.0, 2.0]], [[True]])


# ---- zero-shot and modality gap ----
def test_zero_shot_matches_loop():
    rng = np.random.default_rng(3)
    S = np.round(rng.standard_normal((100, 50)), 1)
    y = rng.integers(0, 50, 100)
    folds = np.repeat(np.arange(1, 6), 20)
    out = zero_shot(S, y, folds)
    per = {}
    for f in range(1, 6):
        idx = np.where(folds == f)[0]
        r = [int(np.where(_order(S[i]) == y[i])[0][0]) + 1 for i in idx]
        per[f] = (np.mean([x == 1 for x in r]), np.mean([1 / x for x in r]))
        assert out["per_fold"][f]["top1"] == pytest.approx(per[f][0])
        assert out["per_fold"][f]["mAP"] == pytest.approx(per[f][1])
    assert out["top1"] == pytest.approx(np.mean([v[0] for v in per.values()]))
    assert out["mAP"] == pytest.approx(np.mean([v[1] for v in per.values()]))
    assert zero_shot(S, y)["per_fold"]["all"]["n"] == 100
    with pytest.raises(ValueError, match="targets values must be in"):
        zero_shot(S, np.full(100, 50))


def test_modality_gap():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 8, generator=g, dtype=torch.float64)
    assert modality_gap(x, 3 * x) == pytest.approx(0.0, abs=1e-12)
    assert modality_gap([[1.0, 0.0]], [[-2.0, 0.0]]) == pytest.approx(2.0)
    a, t = torch.randn(30, 8, generator=g), torch.randn(40, 8, generator=g)
    want = (a / a.norm(dim=1, keepdim=True)).mean(0) - (t / t.norm(dim=1, keepdim=True)).mean(0)
    assert modality_gap(a, t) == pytest.approx(want.norm().item(), rel=1e-6)
    with pytest.raises(ValueError, match="same width"):
        modality_gap(a, t[:, :4])
