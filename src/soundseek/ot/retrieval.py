"""OT-plan retrieval scores for m-LTM evaluation (METHODS.md section 8).

m-LTM ranks the candidates of query i by ``pi[i, :]``, the entropic OT plan between
all test queries and all test candidates (uniform marginals). Since
``log pi_ij = (f_i + g_j - C_ij) / eps``, for a fixed query i this ranks exactly like
``-C_ij / eps + g_j / eps``: plain cost ranking plus a per-candidate bias g_j that
penalises "hub" candidates close to many queries. :func:`plan_scores` returns the
full ``log pi`` (never the log of an underflowed plan), which can be passed directly
to :func:`soundseek.metrics.t2a` / :func:`soundseek.metrics.a2t`.
"""
from __future__ import annotations

from typing import Literal

import torch

from soundseek.ot._core import as_tensor
from soundseek.ot.sinkhorn import sinkhorn_log

__all__ = ["plan_scores"]

KINDS = ("cost", "score")
NORMALIZE = ("max", "none")


def plan_scores(
    matrix,
    reg: float = 0.03,
    *,
    kind: Literal["cost", "score"] = "cost",
    normalize: Literal["max", "none"] = "max",
    a=None,
    b=None,
    n_iter: int = 10,
    tol: float = 1e-9,
    warn: bool = False,
) -> torch.Tensor:
    """Matrix to rank by: ``log pi`` of the entropic plan over the whole test set.

    Args:
        matrix: (n_queries, n_candidates) cost (lower = better, ``kind="cost"``) or
            similarity (higher = better, ``kind="score"``; the cost is ``max(S) - S``).
        reg: entropic regularisation eps (m-LTM evaluation: 0.03).
        normalize: "max" divides the cost by its maximum (as m-LTM does in training),
            "none" uses it as given.
        a, b: query / candidate weights (default uniform).
        n_iter: Sinkhorn iterations (m-LTM evaluation: 10); tol: early stop.
        warn: warn if not converged (off by default: a fixed small n_iter is the protocol).

    Returns:
        log pi (n_queries, n_candidates), higher = better. For a2t from a caption x clip
        matrix, pass ``matrix.T`` (the plan of the transposed problem is the transpose).
    """
    if kind not in KINDS:
        raise ValueError(f"Invalid kind {kind!r}. Valid: {', '.join(KINDS)}")
    if normalize not in NORMALIZE:
        raise ValueError(f"Invalid normalize {normalize!r}. Valid: {', '.join(NORMALIZE)}")
    M = as_tensor(matrix, name="matrix")
    if M.dim() != 2:
        raise ValueError(f"matrix must be 2-D (n_queries, n_candidates), got shape {tuple(M.shape)}")
    C = M.max() - M if kind == "score" else M  # (n, m)
    if normalize == "max":
        top = C.max()
        if not top > 0:
            raise ValueError("cannot normalise a cost whose maximum is <= 0; use normalize='none'")
        C = C / top
    return sinkhorn_log(a, b, C, reg, n_iter=n_iter, tol=tol, warn=warn)
