"""Prior-matrix-revised (PMR) loss of Xin et al. 2023 (seed 002; METHODS §6)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from soundseek.losses._common import check_inputs, check_positive, positive_mask
from soundseek.losses.ntxent import masked_log_softmax


class PMRLoss(nn.Module):
    """PMR: NT-Xent on a similarity matrix revised by a prior taken in the cross direction.

    With ``S = scores`` (B, B), ``S[i, j] = s(t_i, a_j)``, as in METHODS §6 (which fixes the
    printed indices of seed 002 eqs. 10-14)::

        Pr_t2a[i, j] = softmax_i(omega * S[:, j])[i]   # over captions, fixed clip j (a2t prior)
        Pr_a2t[i, j] = softmax_j(omega * S[i, :])[j]   # over clips, fixed caption i (t2a prior)
        L_t2a = -1/B sum_i log softmax_j(S * Pr_t2a / tau)[i, i]   # rows: captions -> clips
        L_a2t = -1/B sum_j log softmax_i(S * Pr_a2t / tau)[j, j]   # columns: clips -> captions
        L = L_t2a + L_a2t                                            # seed eq. 12 (a sum)

    Same-clip pairs: in both cross-entropies the same-clip entries other than the paired one are
    removed from the denominator (as ``NTXentLoss(positives="paired")``); the priors are
    softmaxes over the full row/column (all captions of a clip are plausible matches, so
    they share the prior mass). The prior is part of the graph unless ``detach_prior=True``.

    Args:
        temperature: tau of the cross-entropies (0.07 as the NT-Xent baseline of seed 002).
        omega: logit scale of the prior softmax. The paper does not give a value; None
            (default) uses ``1 / temperature``, the scale of the baseline's logits.
        detach_prior: stop gradients through the prior matrices.

    Shapes:
        scores (B, B) similarities (cosine); clip_ids (B,) -> scalar.

    References:
        METHODS.md §6; Xin, Yang, Zou 2023, "Improving text-audio retrieval by text-aware
        attention pooling and prior matrix revised loss" (ICASSP), eqs. 10-14.

    Example:
        >>> import torch
        >>> loss = PMRLoss(temperature=0.07)
        >>> g = torch.Generator().manual_seed(0)
        >>> scores = torch.rand(4, 4, generator=g) * 0.2 + torch.eye(4) * 0.8
        >>> bool(loss(scores, torch.arange(4)) < loss(scores.roll(1, dims=1), torch.arange(4)))
        True
    """

    def __init__(self, temperature: float = 0.07, omega: float | None = None,
                 detach_prior: bool = False) -> None:
        super().__init__()
        check_positive("temperature", temperature)
        if omega is not None:
            check_positive("omega", omega)
        if not isinstance(detach_prior, bool):
            raise ValueError(f"detach_prior must be True or False, got {detach_prior!r}")
        self.temperature = float(temperature)
        self.omega = float(omega) if omega is not None else 1.0 / self.temperature
        self.detach_prior = detach_prior

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, omega={self.omega:.4g}, detach_prior={self.detach_prior}"

    def priors(self, scores: Tensor) -> tuple[Tensor, Tensor]:
        """(Pr_t2a, Pr_a2t), both (B, B): softmax over captions (dim 0) / over clips (dim 1)."""
        s = scores.detach() if self.detach_prior else scores
        return torch.softmax(self.omega * s, dim=0), torch.softmax(self.omega * s, dim=1)

    def scale(self) -> float:
        """The multiplier ``1 / temperature`` applied to the (prior-weighted) scores."""
        return 1.0 / self.temperature

    def forward(self, scores: Tensor, clip_ids: Tensor) -> Tensor:
        check_inputs(scores, clip_ids)
        pos = positive_mask(clip_ids)  # (B, B)
        pr_t2a, pr_a2t = self.priors(scores)
        logp_t2a = masked_log_softmax(scores * pr_t2a / self.temperature, pos, "paired", dim=1)
        logp_a2t = masked_log_softmax(scores * pr_a2t / self.temperature, pos, "paired", dim=0)
        return -logp_t2a.diagonal().mean() - logp_a2t.diagonal().mean()
