"""Scorers: caption/clip representations -> pair scores (METHODS §3-5, §8).

Registry ``SCORERS`` (global, tap, gpa, clap, ensemble); :func:`build_scorer` builds one by name. Every scorer
follows :class:`soundseek.scoring.base.Scorer`: ``encode_text(tokens, token_mask, sentence)``,
``encode_audio(frames, frame_mask)``, ``score(text, audio, chunk=None) -> (Bt, Ba)`` (all pairs)
and ``score_pairs(text, audio) -> (N,)`` (aligned pairs). ``sk`` holds the Sinkhorn-Knopp A2T
score correction; ``mahalanobis`` the learned ground metric (LOSSES helper).
"""
from __future__ import annotations

import inspect

from ..config import ConfigError
from ..registry import Registry
from .base import Scorer
from .clap import ClapScorer
from .ensemble import EnsembleScorer
from .global_ import GlobalScorer
from .gpa import GPAScorer
from .heads import ProjectionHead, l2_normalize
from .sk import apply_bias, fold_bias_into_items, fold_query, sk_bias
from .tap import TAPScorer

SCORERS: Registry[type[Scorer]] = Registry("scorer")
SCORERS.add("global", GlobalScorer)
SCORERS.add("tap", TAPScorer)
SCORERS.add("gpa", GPAScorer)
SCORERS.add("clap", ClapScorer)
SCORERS.add("ensemble", EnsembleScorer)


def build_scorer(name: str, **options) -> Scorer:
    """``SCORERS.get(name)(**options)``; an unknown name raises KeyError listing the valid
    names, an unknown option ConfigError listing the valid options."""
    cls = SCORERS.get(name)
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = [k for k in options if k not in params]
    if unknown:
        raise ConfigError(f"Unknown option {unknown[0]!r} for scorer {name!r}. Valid: {', '.join(params)}")
    return cls(**options)


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
