"""Text-to-audio and audio-to-text retrieval metrics (METHODS.md section 9).

Definitions follow Mei et al.'s evaluation code (and the DCASE task 6b baseline):

- T2A: every caption is a query, the candidates are the clips, exactly one relevant.
  ``rank`` = 1-based position of the caption's clip; ``AP@10 = 1/rank`` if ``rank <= 10``
  else 0.
- A2T: every clip is a query, the candidates are all captions, the clip's n captions
  are relevant. ``rank`` = position of the *best-ranked* relevant caption;
  ``AP@10 = (1/n) * sum_{t: r_t <= 10} t / r_t`` with ``r_1 < r_2 < ...`` the sorted
  ranks of the relevant captions (divided by ALL n relevant, not by those retrieved).
- ``R@k`` = fraction of queries with ``rank <= k`` (k = 1, 5, 10, 50), ``mAP10`` = mean
  AP@10, both fractions in [0, 1] (Mei et al. print percentages).
- ``meanR`` = mean rank; ``medR = floor(median(rank - 1)) + 1`` as in Mei et al. (equal
  to the median rank for an odd number of queries; rounds .5 down for an even one).

Ties are broken as by a stable descending sort: among candidates with equal score, the
one listed earlier in the candidate order ranks higher. Implementation: the rank of a
relevant candidate c is ``1 + #{score > s_c} + #{score == s_c and index < c}``,
counted for all queries at once with numpy comparisons (no sort, no loop over queries;
chunked over rows to bound memory). Ranks are returned as numpy int64 arrays.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["a2t", "evaluate", "retrieval_summary", "t2a"]

KS = (1, 5, 10, 50)


def _scores(scores, name: str = "scores") -> np.ndarray:
    if isinstance(scores, torch.Tensor):
        scores = scores.detach().cpu()
        if scores.dtype in (torch.float16, torch.bfloat16):
            scores = scores.float()
        scores = scores.numpy()
    S = np.asarray(scores)
    if S.ndim != 2:
        raise ValueError(f"{name} must be a 2-D matrix, got shape {tuple(S.shape)}")
    if S.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {S.dtype}")
    if S.dtype.kind != "f" or S.dtype.itemsize < 4:
        S = S.astype(np.float64)
    if np.isnan(S).any():
        raise ValueError(f"{name} contains NaN")
    return S


def _index(idx, length: int, n_targets: int, name: str, what: str) -> np.ndarray:
    t = np.asarray(idx.detach().cpu() if isinstance(idx, torch.Tensor) else idx)
    if t.ndim != 1 or t.size != length:
        raise ValueError(f"{name} must be 1-D of length {length} (one entry per {what}), got shape {tuple(t.shape)}")
    if t.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer indices, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if length and (t.min() < 0 or t.max() >= n_targets):
        raise ValueError(f"{name} values must be in [0, {n_targets}); got range [{int(t.min())}, {int(t.max())}]")
    return t


def _count_above(S: np.ndarray, V: np.ndarray, budget: int = 1 << 24) -> tuple[np.ndarray, np.ndarray]:
    """#{S[r, :] > V[r, t]} and #{S[r, :] == V[r, t]} for S (R, N), V (R, T) -> two (R, T) arrays."""
    R, N = S.shape
    T = V.shape[1]
    higher = np.empty((R, T), dtype=np.int64)
    equal = np.empty((R, T), dtype=np.int64)
    step = max(1, budget // max(1, T * N))
    for s in range(0, R, step):
        block, vals = S[s : s + step, None, :], V[s : s + step, :, None]  # (k, 1, N), (k, T, 1)
        higher[s : s + step] = np.count_nonzero(block > vals, axis=-1)
        equal[s : s + step] = np.count_nonzero(block == vals, axis=-1)
    return higher, equal


def _ranks(S: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """1-based stable ranks of candidate cols[k] within row S[rows[k]], for every pair k -> (K,).

    Pairs are grouped by row into a padded (R, T) value table so every row of S is read
    once per slot (no copy of S); ties beyond the candidate itself are resolved exactly
    for the few pairs that have them.
    """
    R, N = S.shape
    K = rows.size
    counts = np.bincount(rows, minlength=R)
    T = int(counts.max()) if K else 0
    values = S[rows, cols]  # (K,)
    if R * T <= 4 * K:  # padded layout: row-major, one slot per relevant pair
        order = np.argsort(rows, kind="stable")
        start = np.cumsum(counts) - counts
        slot = np.empty(K, dtype=np.int64)
        slot[order] = np.arange(K) - start[rows[order]]
        V = np.full((R, T), np.nan, dtype=S.dtype)
        V[rows, slot] = values
        higher, equal = _count_above(S, V)
        higher, equal = higher[rows, slot], equal[rows, slot]
    else:  # very unequal group sizes: one gathered row per pair
        higher, equal = np.empty(K, dtype=np.int64), np.empty(K, dtype=np.int64)
        step = max(1, (1 << 24) // max(1, N))
        for s in range(0, K, step):
            h, e = _count_above(S[rows[s : s + step]], values[s : s + step, None])
            higher[s : s + step], equal[s : s + step] = h[:, 0], e[:, 0]
    ranks = 1 + higher
    tied = np.nonzero(equal > 1)[0]
    if tied.size:  # equal scores listed earlier rank higher (stable sort)
        pos = np.arange(N)
        for s in range(0, tied.size, 1024):
            k = tied[s : s + 1024]
            same = S[rows[k]] == values[k, None]
            ranks[k] += np.count_nonzero(same & (pos[None, :] < cols[k, None]), axis=1)
    return ranks


def retrieval_summary(ranks, ap10) -> dict[str, float]:
    """R1/R5/R10/R50, mAP10, medR, meanR from 1-based ranks (Q,) and AP@10 (Q,)."""
    r = np.asarray(ranks, dtype=np.float64)
    out = {f"R{k}": float(np.mean(r <= k)) for k in KS}
    out["mAP10"] = float(np.mean(np.asarray(ap10, dtype=np.float64)))
    out["medR"] = float(np.floor(np.median(r - 1.0)) + 1.0)
    out["meanR"] = float(r.mean())
    return out


def t2a(scores, caption_audio, return_ranks: bool = False):
    """Text-to-audio retrieval metrics.

    Args:
        scores: (n_captions, n_audios) similarities (higher = better), numpy or torch.
        caption_audio: (n_captions,) integer index of the clip each caption belongs to.
        return_ranks: also return the per-caption 1-based ranks (n_captions,).

    Returns:
        ``{"R1", "R5", "R10", "R50", "mAP10", "medR", "meanR"}`` (and ranks if asked).

    Example:
        >>> t2a([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]], [0, 1, 1])["R1"]  # third caption misses
        0.6666666666666666
    """
    S = _scores(scores)
    n_cap, n_aud = S.shape
    if n_cap == 0 or n_aud == 0:
        raise ValueError(f"scores must be non-empty, got shape {(n_cap, n_aud)}")
    ca = _index(caption_audio, n_cap, n_aud, "caption_audio", "caption (row of scores)")
    ranks = _ranks(S, np.arange(n_cap), ca)  # (n_captions,)
    ap = np.where(ranks <= 10, 1.0 / ranks, 0.0)
    out = retrieval_summary(ranks, ap)
    return (out, ranks) if return_ranks else out


def a2t(scores, caption_audio, return_ranks: bool = False):
    """Audio-to-text retrieval metrics.

    Args:
        scores: (n_audios, n_captions) similarities (higher = better), numpy or torch.
        caption_audio: (n_captions,) integer index of the clip each caption belongs to.
            Every clip must have at least one caption (else ValueError: its A2T rank and
            AP are undefined; drop such clips from the score matrix).
        return_ranks: also return the per-clip best rank (n_audios,).

    Returns:
        ``{"R1", "R5", "R10", "R50", "mAP10", "medR", "meanR"}`` (and ranks if asked).
    """
    S = _scores(scores)
    n_aud, n_cap = S.shape
    if n_cap == 0 or n_aud == 0:
        raise ValueError(f"scores must be non-empty, got shape {(n_aud, n_cap)}")
    ca = _index(caption_audio, n_cap, n_aud, "caption_audio", "caption (column of scores)")
    counts = np.bincount(ca, minlength=n_aud)  # (n_audios,) relevant captions per clip
    empty = np.nonzero(counts == 0)[0]
    if empty.size:
        raise ValueError(
            f"{empty.size} clip(s) have no caption, so their A2T rank is undefined "
            f"(first: {empty[:5].tolist()}); remove them from the score matrix"
        )
    ranks = _ranks(S, ca, np.arange(n_cap))  # (n_captions,) rank of each caption for its clip
    # order by (clip, rank): the t-th relevant caption of a clip in rank order
    order = np.argsort(ca * (n_cap + 1) + ranks, kind="stable")
    clip_sorted, rank_sorted = ca[order], ranks[order]
    start = np.cumsum(counts) - counts  # (n_audios,)
    t = np.arange(n_cap) - start[clip_sorted] + 1  # 1-based position within the clip
    contrib = np.where(rank_sorted <= 10, t / rank_sorted, 0.0)
    ap = np.bincount(clip_sorted, weights=contrib, minlength=n_aud) / counts
    best = rank_sorted[start]  # first in each clip's group = best rank
    out = retrieval_summary(best, ap)
    return (out, best) if return_ranks else out


def evaluate(scores, caption_audio) -> dict[str, dict[str, float]]:
    """Both directions from one (n_captions, n_audios) matrix: ``{"t2a": ..., "a2t": ...}``."""
    S = _scores(scores)
    return {"t2a": t2a(S, caption_audio), "a2t": a2t(np.ascontiguousarray(S.T), caption_audio)}
