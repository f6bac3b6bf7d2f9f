"""Evaluation metrics (METHODS.md section 9).

- :func:`t2a`, :func:`a2t`, :func:`evaluate` -- retrieval R@k, mAP@10, medR, meanR
  (Mei et al. / DCASE definitions, stable tie-breaking).
- :func:`multi_positive_map` -- mAP@k with a relevance table (DCASE 2025 style).
- :func:`zero_shot` -- zero-shot classification top-1 and mAP, per fold.
- :func:`modality_gap` -- distance of the normalised-embedding centroids.
"""
from __future__ import annotations

from soundseek.metrics.gap import modality_gap
from soundseek.metrics.multipositive import multi_positive_map
from soundseek.metrics.retrieval import a2t, evaluate, retrieval_summary, t2a
from soundseek.metrics.zeroshot import zero_shot

__all__ = ["a2t", "evaluate", "modality_gap", "multi_positive_map", "retrieval_summary", "t2a", "zero_shot"]
