"""Entropic optimal transport (METHODS.md sections 6 and 8): log-domain, batched, differentiable.

- :func:`sinkhorn` / :func:`sinkhorn_log` -- balanced entropic OT (POT's ``ot.sinkhorn``).
- :func:`partial_sinkhorn` / :func:`partial_sinkhorn_log` -- entropic partial OT
  (POT's ``ot.partial.entropic_partial_wasserstein``).
- :func:`plan_scores` -- m-LTM retrieval scores ``log pi`` over a whole test set.
"""
from __future__ import annotations

from soundseek.ot._core import ConvergenceWarning
from soundseek.ot.partial import partial_sinkhorn, partial_sinkhorn_log
from soundseek.ot.retrieval import plan_scores
from soundseek.ot.sinkhorn import sinkhorn, sinkhorn_log

__all__ = [
    "ConvergenceWarning",
    "partial_sinkhorn",
    "partial_sinkhorn_log",
    "plan_scores",
    "sinkhorn",
    "sinkhorn_log",
]
