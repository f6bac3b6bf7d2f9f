"""Symmetric InfoNCE / NT-Xent on a score matrix, with same-clip positives masked (METHODS §6)."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from soundseek.losses._common import check_choice, check_inputs, check_positive, positive_mask

POSITIVES = ("paired", "all")


def masked_log_softmax(logits: Tensor, pos: Tensor, positives: str, dim: int) -> Tensor:
    """Log-softmax along ``dim`` for the InfoNCE variants.

    ``positives="paired"``: the same-clip entries other than the diagonal are removed from the
    normaliser (set to -inf before the softmax), so only the paired entry and true negatives
    compete. ``"all"``: plain log-softmax (every entry stays in the normaliser).
    """
    if positives == "paired":
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(pos & ~eye, float("-inf"))
    return torch.log_softmax(logits, dim=dim)


class NTXentLoss(nn.Module):
    """Symmetric InfoNCE (NT-Xent) with temperature and multi-positive handling.

    With logits ``Z = scores * t`` (``t = 1 / temperature``, or ``exp(logit_scale)`` when
    learnable, capped at ``max_logit_scale``) and the positive mask
    ``P[i, j] = clip_ids[i] == clip_ids[j]``:

    - ``positives="paired"`` (default): for caption i the target is its paired column i and
      the other same-clip columns are REMOVED from the softmax denominator (they are neither
      the target nor negatives):
      ``L_t2a = -1/B sum_i log( exp Z[i,i] / sum_{j: j = i or not P[i,j]} exp Z[i,j] )``,
      ``L_a2t`` the same over the columns (captions i for clip j). Without duplicate clip ids
      this is exactly the usual CLIP / Mei et al. loss.
    - ``positives="all"`` (SupCon "L_out"): the loss of caption i averages ``-log softmax``
      over all its positives j in P[i, :], with every column in the denominator.

    ``L = (L_t2a + L_a2t) / 2``.  (Mei et al.'s public NT-Xent builds this mask but applies it
    after taking the diagonal, so duplicates there stay in the denominator as negatives.)

    Args:
        temperature: tau (0.07 Mei et al., 0.05 thesis); the initial value when learnable.
        learnable: learn ``logit_scale = log(1 / tau)`` (CLIP).
        max_logit_scale: cap on ``exp(logit_scale)`` when learnable (CLIP: 100).
        positives: ``"paired"`` or ``"all"`` (see above).

    Shapes:
        scores (B, B), ``scores[i, j] = s(caption i, clip j)``; clip_ids (B,) -> scalar.

    References:
        METHODS.md §6; Oord et al. 2018 (InfoNCE); Chen et al. 2020 (SimCLR NT-Xent);
        Radford et al. 2021 (CLIP learnable scale); Khosla et al. 2020 (SupCon);
        Mei et al. 2022; seed 002 eq. (3); seed 001 eq. (3.2).

    Example:
        >>> import torch
        >>> loss = NTXentLoss(temperature=0.07)
        >>> scores = torch.eye(3) * 0.5
        >>> round(loss(scores, torch.tensor([0, 1, 2])).item(), 4)
        0.0016
    """

    def __init__(
        self,
        temperature: float = 0.07,
        learnable: bool = False,
        max_logit_scale: float = 100.0,
        positives: str = "paired",
    ) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        check_positive("max_logit_scale", max_logit_scale)
        check_choice("positives", positives, POSITIVES)
        if not isinstance(learnable, bool):
            raise ValueError(f"learnable must be True or False, got {learnable!r}")
        self.positives = positives
        self.learnable = learnable
        self.max_logit_scale = float(max_logit_scale)
        self.temperature = float(temperature)  # fixed value, or the initial one when learnable
        if learnable:
            if 1.0 / temperature > max_logit_scale:
                raise ValueError(
                    f"1/temperature = {1.0 / temperature:g} exceeds max_logit_scale = {max_logit_scale:g}"
                )
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))

    def extra_repr(self) -> str:
        return (f"temperature={1.0 / float(self.scale()):.4g}, learnable={self.learnable}, "
                f"positives={self.positives!r}")

    def scale(self) -> Tensor | float:
        """The multiplier ``t`` applied to the scores (``1 / temperature``)."""
        if self.learnable:
            return self.logit_scale.clamp(max=math.log(self.max_logit_scale)).exp()
        return 1.0 / self.temperature

    def forward(self, scores: Tensor, clip_ids: Tensor) -> Tensor:
        check_inputs(scores, clip_ids)
        pos = positive_mask(clip_ids)  # (B, B)
        logits = scores * self.scale()  # (B, B)
        logp_rows = masked_log_softmax(logits, pos, self.positives, dim=1)  # over clips
        logp_cols = masked_log_softmax(logits, pos, self.positives, dim=0)  # over captions
        if self.positives == "paired":
            l_t2a = -logp_rows.diagonal().mean()
            l_a2t = -logp_cols.diagonal().mean()
        else:
            w = pos.to(logits.dtype)
            l_t2a = -((logp_rows * w).sum(1) / w.sum(1)).mean()
            l_a2t = -((logp_cols * w).sum(0) / w.sum(0)).mean()
        return 0.5 * (l_t2a + l_a2t)
