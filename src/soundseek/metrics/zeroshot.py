"""Zero-shot classification metrics (ESC-50 protocol of m-LTM; METHODS.md section 9).

Each clip is scored against one text prompt per class (e.g. "this is a sound of
{label}"). The classes are ranked per clip by score (stable: on ties the lower class
index ranks higher), then

- top-1 accuracy = fraction of clips whose true class ranks first;
- mAP = mean over clips of the AP of the single true class = 1 / rank (a mean
  reciprocal rank).

With ``folds`` (ESC-50: 5 folds) both are computed per fold and averaged over folds
(the ``per_fold`` entry keeps each fold's values).
"""
from __future__ import annotations

import numpy as np
import torch

from soundseek.metrics.retrieval import _index, _ranks, _scores

__all__ = ["zero_shot"]


def zero_shot(scores, targets, folds=None) -> dict:
    """Top-1 accuracy and mAP of zero-shot classification.

    Args:
        scores: (n_clips, n_classes) clip-prompt similarities.
        targets: (n_clips,) true class index of each clip.
        folds: optional (n_clips,) fold label of each clip.

    Returns:
        ``{"top1", "mAP", "per_fold": {fold: {"top1", "mAP", "n"}}}`` (a single fold
        ``"all"`` when ``folds`` is None).
    """
    S = _scores(scores)
    n, n_classes = S.shape
    y = _index(targets, n, n_classes, "targets", "clip (row of scores)")
    ranks = _ranks(S, np.arange(n), y)  # (n_clips,) rank of the true class
    if folds is None:
        labels = np.full(n, "all", dtype=object)
    else:
        labels = np.asarray(folds.detach().cpu() if isinstance(folds, torch.Tensor) else folds)
        if labels.shape != (n,):
            raise ValueError(f"folds must have shape ({n},), got {tuple(labels.shape)}")
    per_fold = {}
    for fold in sorted(set(labels.tolist()), key=str):
        r = ranks[labels == fold]
        per_fold[fold] = {"top1": float(np.mean(r == 1)), "mAP": float(np.mean(1.0 / r)), "n": int(r.size)}
    return {
        "top1": float(np.mean([v["top1"] for v in per_fold.values()])),
        "mAP": float(np.mean([v["mAP"] for v in per_fold.values()])),
        "per_fold": per_fold,
    }
