"""Multi-positive retrieval: mAP@k with a relevance table (METHODS.md section 9).

For the DCASE 2025 task 6 style evaluation a query may have several relevant
candidates. With the candidates of query q ranked by score (stable descending sort:
equal scores keep the candidate order) and ``rel(r)`` the relevance of rank r,

    AP@k(q) = sum_{r <= k, rel(r)} P@r / min(n_rel(q), k),   P@r = #relevant in top r / r,

and ``mAP@k`` is the mean over queries. Dividing by ``min(n_rel, k)`` makes a perfect
ranking score 1 even when a query has more than k relevant candidates. With exactly
one relevant candidate this reduces to the T2A ``AP@10 = 1/rank`` of Mei et al.
"""
from __future__ import annotations

import numpy as np
import torch

from soundseek.metrics.retrieval import _scores

__all__ = ["multi_positive_map"]


def multi_positive_map(scores, relevance, k: int = 16, per_query: bool = False):
    """Mean AP@k over queries with several relevant candidates.

    Args:
        scores: (n_queries, n_candidates) similarities (higher = better).
        relevance: (n_queries, n_candidates) boolean (or 0/1) relevance table; every
            query needs at least one relevant candidate (else ValueError).
        k: cut-off (DCASE 2025: 16); if larger than n_candidates, n_candidates is used.
        per_query: return the (n_queries,) AP@k array instead of its mean.

    Example:
        >>> multi_positive_map([[0.9, 0.8, 0.1]], [[True, False, True]], k=2)  # P@1 / min(2, 2)
        0.5
    """
    S = _scores(scores)
    rel = relevance.detach().cpu().numpy() if isinstance(relevance, torch.Tensor) else np.asarray(relevance)
    if rel.shape != S.shape:
        raise ValueError(f"relevance shape {tuple(rel.shape)} must equal scores shape {tuple(S.shape)}")
    if rel.dtype != bool:
        if not np.isin(rel, (0, 1)).all():
            raise ValueError("relevance must be boolean or 0/1")
        rel = rel.astype(bool)
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_rel = rel.sum(1)  # (Q,)
    if (n_rel == 0).any():
        bad = np.nonzero(n_rel == 0)[0]
        raise ValueError(f"{bad.size} query(ies) have no relevant candidate (first: {bad[:5].tolist()})")
    k = min(int(k), S.shape[1])
    order = np.argsort(-S, axis=1, kind="stable")[:, :k]  # (Q, k) stable: earlier candidate first on ties
    hit = np.take_along_axis(rel, order, axis=1)  # (Q, k)
    precision = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
    ap = (precision * hit).sum(1) / np.minimum(n_rel, k)
    return ap if per_query else float(ap.mean())
