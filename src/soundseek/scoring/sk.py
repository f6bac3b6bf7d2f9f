"""Sinkhorn-Knopp score correction for audio-to-text retrieval (GPA eq 10, following Park et al.
"Normalized contrastive learning for text-video retrieval"; METHODS §5).

With ``R'`` (G training audio queries x J test captions) from the trained model, find a
per-caption bias ``beta (J,)`` such that under ``P[g, j] = softmax_j(R'[g, j] / tau + beta_j)``
every caption receives the same total mass ``sum_g P[g, j] = G / J``. Sinkhorn iterations in
the log domain alternate the row normalisation (the softmax over captions) and the column
rescaling ``beta_j += log(G / J) - log(mass_j)``. Test A2T scores are then ranked by
``R[i, j] / tau + beta_j`` (:func:`apply_bias`); T2A is unchanged.

At search time the bias is a per-caption additive term, so it folds into an inner-product
index by appending one dimension (:func:`fold_bias_into_items`, :func:`fold_query`):
``[q, 1] . [x_j, tau * beta_j] = tau * (q . x_j / tau + beta_j)``, the same ranking.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor


def _check_tau(tau: float) -> float:
    t = float(tau)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"tau must be a positive finite number, got {tau!r}")
    return t


def sk_bias(
    train_scores: Tensor,
    tau: float,
    n_iter: int = 10,
    tol: float | None = None,
    log: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Any]]:
    """Per-caption Sinkhorn bias (log domain).

    Args:
        train_scores: R' (G, J), scores of G training audio queries against the J test captions.
        tau: temperature (defaults elsewhere to the training temperature); scores are divided by it.
        n_iter: Sinkhorn iterations (10 in the paper).
        tol: stop early once ``max_j |mass_j - G/J| / (G/J) < tol`` (None: run all iterations).
        log: also return diagnostics ``{"n_iter", "mass_error"}`` (relative max column error
            of ``softmax_j(R'/tau + beta)`` after the last iteration).

    Returns:
        beta (J,), centred to mean 0 (softmax_j and per-query rankings ignore a constant);
        with ``log=True`` a tuple (beta, diagnostics).

    Example:
        >>> r = torch.tensor([[0.9, 0.8, 0.1], [0.7, 0.9, 0.2]])
        >>> beta = sk_bias(r, tau=0.1, n_iter=500)
        >>> torch.softmax(r / 0.1 + beta, dim=1).sum(0)  # every caption gets G/J = 2/3
        tensor([0.6667, 0.6667, 0.6667])
    """
    if train_scores.dim() != 2 or min(train_scores.shape) == 0:
        raise ValueError(f"train_scores must be a non-empty (G, J) matrix, got shape {tuple(train_scores.shape)}")
    if not torch.isfinite(train_scores).all():
        raise ValueError("train_scores contains NaN or infinite values")
    if int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter!r}")
    tau = _check_tau(tau)
    x = train_scores / tau  # (G, J)
    g, j = x.shape
    log_target = math.log(g / j)
    beta = torch.zeros(j, dtype=x.dtype, device=x.device)
    err, it = float("inf"), 0
    for it in range(1, int(n_iter) + 1):
        log_p = torch.log_softmax(x + beta, dim=1)  # row normalisation
        log_mass = torch.logsumexp(log_p, dim=0)  # (J,) column masses
        if tol is not None:
            err = (log_mass - log_target).exp().sub(1).abs().max().item()
            if err < tol:
                break
        beta = beta + (log_target - log_mass)  # column rescaling
    beta = beta - beta.mean()
    if not log:
        return beta
    log_mass = torch.logsumexp(torch.log_softmax(x + beta, dim=1), dim=0)
    err = (log_mass - log_target).exp().sub(1).abs().max().item()
    if tol is not None and err >= tol:
        warnings.warn(f"sk_bias did not reach tol={tol} in {n_iter} iterations (error {err:.2e})", stacklevel=2)
    return beta, {"n_iter": it, "mass_error": err}


def apply_bias(scores: Tensor, beta: Tensor, tau: float) -> Tensor:
    """Corrected A2T scores ``scores / tau + beta``: scores (n_audio, J), beta (J,) -> (n_audio, J)."""
    tau = _check_tau(tau)
    if scores.dim() != 2 or beta.shape != (scores.shape[1],):
        raise ValueError(
            f"scores must be (n_audio, J) and beta (J,), got {tuple(scores.shape)} and {tuple(beta.shape)}"
        )
    return scores / tau + beta


def fold_bias_into_items(items: Tensor, beta: Tensor, tau: float) -> Tensor:
    """Caption index vectors with the bias appended: (J, d) -> (J, d+1) ``[x_j, tau * beta_j]``."""
    tau = _check_tau(tau)
    if items.dim() != 2 or beta.shape != (items.shape[0],):
        raise ValueError(f"items must be (J, d) and beta (J,), got {tuple(items.shape)} and {tuple(beta.shape)}")
    return torch.cat([items, (tau * beta).to(items.dtype).unsqueeze(1)], dim=1)


def fold_query(queries: Tensor) -> Tensor:
    """Query vectors for a folded index: (n, d) -> (n, d+1) ``[q, 1]``."""
    if queries.dim() != 2:
        raise ValueError(f"queries must be (n, d), got {tuple(queries.shape)}")
    return torch.cat([queries, torch.ones_like(queries[:, :1])], dim=1)
