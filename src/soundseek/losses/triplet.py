"""Bidirectional triplet (margin ranking) losses on a score matrix (METHODS §6).

Three ways to use the negatives of an anchor, after Mei et al. (2022):

- ``"sum"`` (VSE, Kiros et al. 2014): hinge summed over all negatives.
- ``"max"`` (VSE++, Faghri et al. 2018): hinge of the hardest negative only.
- ``"weighted"``: the polynomial weighting of Wei et al. (2020, "Universal Weighting Metric
  Learning for Cross-Modal Matching") as used in Mei et al.'s public code (``WeightTriplet``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from soundseek.losses._common import check_choice, check_inputs, check_positive, positive_mask

MODES = ("sum", "max", "weighted")

# Polynomial weights of Wei et al. (2020) / Mei et al. (2022): c0 + c1 * s + c2 * s^2
POS_POLY = (0.5, -0.7, 0.2)
NEG_POLY = (0.03, -0.4, 0.9)
# Anchors whose paired score is already >= 1 - POS_EPS are skipped in "weighted" mode (as Mei).
POS_EPS = 1e-5


def _poly(s: Tensor, c: tuple[float, float, float]) -> Tensor:
    return (c[0] + c[1] * s + c[2] * s * s).clamp(min=0)


class TripletLoss(nn.Module):
    """Bidirectional triplet loss with sum / hardest / polynomially weighted negatives.

    For caption anchor i (row i) the positive is its paired clip ``scores[i, i]`` and the
    negatives are the clips j of a different clip id (``~P[i, j]``); for clip anchor j
    (column j) the positive is ``scores[j, j]`` and the negatives are the captions i of other
    clips. Same-clip pairs (duplicate clip ids in a batch) are never negatives. With
    ``h[i, j] = relu(margin + scores[i, j] - scores[i, i])`` (rows) and
    ``h'[i, j] = relu(margin + scores[i, j] - scores[j, j])`` (columns):

    - ``sum``:  ``L = (sum_{i, j neg} h[i, j] + sum_{i, j neg} h'[i, j]) / B``
    - ``max``:  ``L = (sum_i max_{j neg} h[i, j] + sum_j max_{i neg} h'[i, j]) / B``
    - ``weighted`` (Mei et al.'s ``WeightTriplet``): for every anchor with positive score p and
      hardest negative score n, if ``p < 1 - 1e-5`` and ``n + margin > p`` (a negative violates
      the margin) the anchor contributes ``relu(0.5 - 0.7 p + 0.2 p^2) +
      relu(0.03 - 0.4 n + 0.9 n^2)``, otherwise 0; the sum over both directions is divided by
      B. The polynomials weight a pair by how hard it is (low p, high n), as in Wei et al.'s
      polynomial loss; the margin only selects which anchors are active.

    The normalisation (sum of both directions divided by B) follows Mei et al.'s code.
    ``bidirectional=False`` keeps only the caption-anchor (text-to-audio) term.

    Args:
        margin: hinge margin (0.2 in Mei et al.).
        mode: ``"sum"``, ``"max"`` or ``"weighted"``.
        bidirectional: also use clip anchors (audio-to-text direction).

    Shapes:
        scores (B, B) with ``scores[i, j] = s(caption i, clip j)`` (higher = better, cosine in
        Mei et al.), clip_ids (B,) -> scalar.

    References:
        METHODS.md §6; Mei et al. 2022, "On metric learning for audio-text cross-modal
        retrieval" (Interspeech); Faghri et al. 2018 (VSE++); Wei et al. 2020 (CVPR).

    Example:
        >>> import torch
        >>> loss = TripletLoss(margin=0.2, mode="max")
        >>> scores = torch.tensor([[0.9, 0.1, 0.8], [0.0, 0.7, 0.2], [0.6, 0.45, 0.5]])
        >>> round(loss(scores, torch.tensor([0, 1, 0])).item(), 4)  # captions 0 and 2: same clip
        0.05
    """

    def __init__(self, margin: float = 0.2, mode: str = "sum", bidirectional: bool = True) -> None:
        super().__init__()
        check_choice("triplet mode", mode, MODES)
        check_positive("margin", margin, allow_zero=True)
        if not isinstance(bidirectional, bool):
            raise ValueError(f"bidirectional must be True or False, got {bidirectional!r}")
        self.margin = float(margin)
        self.mode = mode
        self.bidirectional = bidirectional

    def extra_repr(self) -> str:
        return f"margin={self.margin}, mode={self.mode!r}, bidirectional={self.bidirectional}"

    def _direction(self, scores: Tensor, neg: Tensor) -> Tensor:
        """Summed loss of the row anchors of ``scores`` (B, B) with negative mask ``neg``."""
        pos = scores.diagonal()[:, None]  # (B, 1)
        if self.mode == "weighted":
            hardest = scores.masked_fill(~neg, float("-inf")).max(dim=1).values  # (B,)
            p = pos[:, 0]
            active = torch.isfinite(hardest) & (p < 1 - POS_EPS) & (hardest + self.margin > p)
            hardest = torch.where(active, hardest, torch.zeros_like(hardest))
            per_anchor = _poly(p, POS_POLY) + _poly(hardest, NEG_POLY)  # (B,)
            return (per_anchor * active).sum()
        hinge = (self.margin + scores - pos).clamp(min=0).masked_fill(~neg, 0.0)  # (B, B)
        if self.mode == "sum":
            return hinge.sum()
        return hinge.max(dim=1).values.sum()

    def forward(self, scores: Tensor, clip_ids: Tensor) -> Tensor:
        check_inputs(scores, clip_ids)
        neg = ~positive_mask(clip_ids)  # (B, B)
        total = self._direction(scores, neg)
        if self.bidirectional:
            total = total + self._direction(scores.t(), neg.t())
        return total / scores.shape[0]
