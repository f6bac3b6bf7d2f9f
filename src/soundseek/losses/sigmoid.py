"""Pairwise sigmoid loss (SigLIP) on a score matrix (METHODS §6)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundseek.losses._common import check_inputs, positive_mask


class SigmoidLoss(nn.Module):
    """SigLIP loss: every (caption, clip) pair is an independent binary classification.

    ``L = -1/B sum_{i,j} log sigmoid( z[i, j] * (t * scores[i, j] + b) )`` with
    ``t = exp(logit_scale)``, ``z[i, j] = +1`` if ``clip_ids[i] == clip_ids[j]`` (so captions of
    the same clip meeting in a batch are positives, not negatives) and -1 otherwise.

    Initialisation: SigLIP uses ``logit_scale = log 10`` (t = 10) and ``b = -10`` (the default
    here). The thesis (seed 001) reports "t = 1, b = -10"; METHODS §6 reads that as log-scale 1,
    i.e. ``init_logit_scale=1.0`` (use ``0.0`` for t = 1 literally). Seed 001 eq. (3.3) prints
    ``z(-t x.y + b)`` inside the exponent: a sign typo; this is the SigLIP definition.

    Args:
        init_logit_scale: initial ``log t``.
        init_bias: initial bias b.
        learnable: learn ``logit_scale`` and ``bias`` (nn.Parameters); otherwise buffers.
        max_logit_scale: optional cap on ``t`` (None: no cap).

    Shapes:
        scores (B, B), ``scores[i, j] = s(caption i, clip j)`` (cosine); clip_ids (B,) -> scalar.

    References:
        METHODS.md §6; Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"
        (ICCV); seed 001 §3.5.2.

    Example:
        >>> import torch
        >>> loss = SigmoidLoss()
        >>> scores = 2 * torch.eye(2) - 1           # perfect: +1 paired, -1 otherwise
        >>> round(loss(scores, torch.tensor([0, 1])).item(), 4)  # positives pay log(1+e^0)
        0.6931
    """

    def __init__(
        self,
        init_logit_scale: float = math.log(10.0),
        init_bias: float = -10.0,
        learnable: bool = True,
        max_logit_scale: float | None = None,
    ) -> None:
        super().__init__()
        for name, v in (("init_logit_scale", init_logit_scale), ("init_bias", init_bias)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not isinstance(learnable, bool):
            raise ValueError(f"learnable must be True or False, got {learnable!r}")
        if max_logit_scale is not None and not (max_logit_scale > 0):
            raise ValueError(f"max_logit_scale must be > 0 or None, got {max_logit_scale!r}")
        self.learnable = learnable
        self.max_logit_scale = max_logit_scale
        t0 = torch.tensor(float(init_logit_scale))
        b0 = torch.tensor(float(init_bias))
        if learnable:
            self.logit_scale = nn.Parameter(t0)
            self.bias = nn.Parameter(b0)
        else:
            self.register_buffer("logit_scale", t0)
            self.register_buffer("bias", b0)

    def extra_repr(self) -> str:
        return (f"logit_scale={self.logit_scale.item():.4g}, bias={self.bias.item():.4g}, "
                f"learnable={self.learnable}")

    def scale(self) -> Tensor:
        s = self.logit_scale
        if self.max_logit_scale is not None:
            s = s.clamp(max=math.log(self.max_logit_scale))
        return s.exp()

    def forward(self, scores: Tensor, clip_ids: Tensor) -> Tensor:
        check_inputs(scores, clip_ids)
        z = positive_mask(clip_ids).to(scores.dtype) * 2 - 1  # (B, B) +1 / -1
        logits = scores * self.scale() + self.bias  # (B, B)
        return -F.logsigmoid(z * logits).sum() / scores.shape[0]
