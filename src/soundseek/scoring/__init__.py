"""Scorers: caption/clip representations -> pair scores (METHODS §3-5, §8).

Registry ``SCORERS`` (global, tap, gpa, clap, ensemble); :func:`build_scorer` builds one by name. Every scorer
follows :class:`soundseek.scoring.base.Scorer`: ``encode_text(tokens, token_mask, sentence)``,
``encode_audio(frames, frame_mask)``, ``score(text, audio, chunk=None) -> (Bt, Ba)`` (all pairs)
and ``score_pairs(text, audio) -> (N,)`` (aligned pairs). ``sk`` holds the Sinkhorn-Knopp A2T
score correction; ``mahalanobis`` the learned ground metric (LOSSES helper).
"""
from __future__ import annotations

from .base import SCORERS, Scorer
from .clap import ClapScorer
from .ensemble import EnsembleScorer
from .global_ import GlobalScorer
from .gpa import GPAScorer
from .heads import ProjectionHead, l2_normalize
from .sk import apply_bias, fold_bias_into_items, fold_query, sk_bias
from .tap import TAPScorer

SCORERS.add("global", GlobalScorer)
SCORERS.add("tap", TAPScorer)
SCORERS.add("gpa", GPAScorer)
SCORERS.add("clap", ClapScorer)
SCORERS.add("ensemble", EnsembleScorer)


def build_scorer(name: str, **options) -> Scorer:
    """``SCORERS.build(name, **options)``: an unknown name raises KeyError listing the valid
    names, an unknown option ConfigError listing the valid options."""
    return SCORERS.build(name, **options)


__all__ = [
    "SCORERS",
    "build_scorer",
    "Scorer",
    "GlobalScorer",
    "TAPScorer",
    "GPAScorer",
    "EnsembleScorer",
    "ProjectionHead",
    "l2_normalize",
    "sk_bias",
    "apply_bias",
    "fold_bias_into_items",
    "fold_query",
]
