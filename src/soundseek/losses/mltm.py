"""Mini-batch learning-to-match (m-LTM) loss of Luong et al. 2024 (seed 003; METHODS §6)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from soundseek.losses._common import check_choice, check_inputs, check_positive, positive_mask
from soundseek.ot import partial_sinkhorn_log, sinkhorn_log

GROUNDS = ("euclidean", "distance")


def ground_cost(scores: Tensor, ground: str, eps: float = 1e-8) -> Tensor:
    """Ground cost C (B, B) from a score matrix.

    ``"euclidean"``: scores are cosines of unit vectors, ``C = ||f - g|| = sqrt(2 - 2 S)``
    (clamped at ``eps`` inside the root). ``"distance"``: scores are minus distances (the
    Mahalanobis scorer), ``C = -S``.
    """
    check_choice("ground", ground, GROUNDS)
    if ground == "euclidean":
        return torch.sqrt((2.0 - 2.0 * scores).clamp(min=eps))
    return -scores


class MLTMLoss(nn.Module):
    """m-LTM: KL between the ideal matching and the entropic OT plan of the batch.

    Steps (METHODS §6, seed 003 eqs. 5-12):

    1. Ground cost ``C`` from the scores (:func:`ground_cost`): ``"euclidean"`` for cosine
       scores of L2-normalised embeddings, ``"distance"`` for scores that are minus a distance
       (e.g. from :class:`soundseek.scoring.mahalanobis.MahalanobisMetric`).
    2. ``normalize_cost``: ``C <- C / max(C)`` over the batch, as the public code. The max is
       NOT detached: the loss is then exactly invariant to a global rescaling of the costs and
       autograd returns that function's true gradient (the max only routes gradient to one
       entry).
    3. ``log pi`` of ``pi = Sinkhorn(1/B, 1/B, C, reg)`` (``soundseek.ot.sinkhorn_log``: log
       domain, differentiable by autograd through the iterations), or with ``mass`` set of the
       entropic PARTIAL plan transporting only ``mass``
       (``soundseek.ot.partial_sinkhorn_log``; noisy correspondence, m = 0.95).
    4. ``loss = -sum_{i,j} pi_hat[i, j] log pi[i, j]`` = ``KL(pi_hat || pi)`` minus the
       constant entropy term of pi_hat. Without duplicate clip ids ``pi_hat = I / B`` and the
       loss is ``-1/B sum_i log pi[i, i]``; when captions of the same clip meet in the batch,
       ``pi_hat = P / P.sum()`` with the positive mask P (mass shared over all same-clip
       pairs). ``log pi`` is taken from the solver's log-domain plan, never as the log of an
       underflowed plan.

    Args:
        reg: entropic regularisation eps (0.05 public default; m-LTM config 0.03).
        ground: ``"euclidean"`` or ``"distance"``.
        mass: None (balanced OT) or the transported mass in (0, 1] (partial OT).
        n_iter: Sinkhorn iteration cap (iterations are unrolled for the gradient).
        tol: marginal-error tolerance of the solver.
        normalize_cost: divide C by its batch max.
        warn: issue one ConvergenceWarning, the first time a batch's plan does not converge
            within ``n_iter`` (a training run calls the loss thousands of times; later
            non-converged batches are counted in ``n_unconverged``, not reported again).

    Shapes:
        scores (B, B), ``scores[i, j] = s(caption i, clip j)`` (higher = better); clip_ids (B,)
        -> scalar. ``plan(scores)`` returns the (B, B) plan itself.

    References:
        METHODS.md §6; Luong et al. 2024, "Revisiting deep audio-text retrieval through the
        lens of transportation" (ICLR); Benamou et al. 2015 (Bregman projections, partial OT).

    Example:
        >>> import torch
        >>> loss = MLTMLoss(reg=0.05)
        >>> good = torch.eye(4) * 0.9                     # cosine scores, paired on the diagonal
        >>> bool(loss(good, torch.arange(4)) < loss(good.roll(1, dims=1), torch.arange(4)))
        True
    """

    def __init__(self, reg: float = 0.05, ground: str = "euclidean", mass: float | None = None,
                 n_iter: int = 100, tol: float = 1e-6, normalize_cost: bool = True,
                 warn: bool = True) -> None:
        super().__init__()
        check_positive("reg", reg)
        check_choice("ground", ground, GROUNDS)
        if mass is not None:
            check_positive("mass", mass)
            if mass > 1:
                raise ValueError(f"mass must be in (0, 1], got {mass!r}")
        if not isinstance(n_iter, int) or isinstance(n_iter, bool) or n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {n_iter!r}")
        check_positive("tol", tol, allow_zero=True)
        for name, v in (("normalize_cost", normalize_cost), ("warn", warn)):
            if not isinstance(v, bool):
                raise ValueError(f"{name} must be True or False, got {v!r}")
        self.reg = float(reg)
        self.ground = ground
        self.mass = None if mass is None else float(mass)
        self.n_iter = n_iter
        self.tol = float(tol)
        self.normalize_cost = normalize_cost
        self.warn = warn
        self.n_unconverged = 0  # batches whose plan stopped at n_iter before reaching tol

    def extra_repr(self) -> str:
        return (f"reg={self.reg}, ground={self.ground!r}, mass={self.mass}, n_iter={self.n_iter}, "
                f"normalize_cost={self.normalize_cost}")

    def cost(self, scores: Tensor) -> Tensor:
        """The (normalised) ground cost C (B, B) the plan is computed on."""
        c = ground_cost(scores, self.ground)
        if self.normalize_cost:
            c = c / c.max().clamp(min=torch.finfo(c.dtype).tiny)
        return c

    def log_plan(self, scores: Tensor) -> Tensor:
        """log pi (B, B) of the entropic (partial) plan of the batch, from the log-domain solver."""
        c = self.cost(scores)  # (B, B)
        # the solver's own ConvergenceWarning, for the first unconverged batch only
        kw = dict(n_iter=self.n_iter, tol=self.tol, warn=self.warn and self.n_unconverged == 0, log=True)
        if self.mass is None:
            log_pi, info = sinkhorn_log(None, None, c, self.reg, **kw)  # uniform marginals 1/B
        else:
            log_pi, info = partial_sinkhorn_log(None, None, c, self.reg, self.mass, **kw)
        self.n_unconverged += not info["converged"]
        return log_pi

    def plan(self, scores: Tensor) -> Tensor:
        """The transport plan pi (B, B)."""
        return self.log_plan(scores).exp()

    def forward(self, scores: Tensor, clip_ids: Tensor) -> Tensor:
        check_inputs(scores, clip_ids)
        target = positive_mask(clip_ids).to(scores.dtype)  # (B, B)
        target = target / target.sum()  # pi_hat
        log_pi = self.log_plan(scores)  # (B, B)
        # pi_hat is 0 off the positives: skip those entries (0 * -inf would be nan)
        return -(log_pi * target).masked_fill(target == 0, 0.0).sum()
