"""Entropic partial optimal transport by log-domain Dykstra / Bregman projections.

Solves, for every leading batch index of ``C`` (..., n, m),

    P* = argmin <P, C> - reg * H(P)   s.t.  P 1 <= a,  P^T 1 <= b,  1^T P 1 = mass,

(METHODS.md section 6, m-LTM's noisy-correspondence variant) -- the problem of POT's
``ot.partial.entropic_partial_wasserstein(a, b, M, reg, m)``. Equivalently P* is the KL
projection of the Gibbs kernel ``exp(-C/reg)`` onto the intersection of the three
convex sets; Dykstra's algorithm cycles KL projections onto each set with correction
terms (Benamou et al. 2015, Prop. 5):

- rows:   scale row i by min(a_i / rowsum_i, 1)    (correction r1, one per row)
- cols:   scale col j by min(b_j / colsum_j, 1)    (correction r2, one per column)
- mass:   scale everything by mass / total          (affine set: no correction needed)

The corrections of the two inequality sets are per-row / per-column vectors, so the
iterate is always ``log P = phi_i + psi_j - C_ij / reg`` and the solver never stores
an (n, m) correction matrix nor takes a log of the plan. The iteration order and the
starting point (kernel rescaled to ``mass``) are those of POT, so fixed-iteration
results agree with it.

Convergence: the error of an iteration is the L1 mass moved by its three projections
(row + column + total); the solver stops when it is <= tol (max over the batch),
checked every ``check_every`` iterations, and warns with ConvergenceWarning at the cap
(``tol`` is raised to 100 * eps of the dtype; ``tol=0`` runs exactly ``n_iter`` iterations).

References:
    Benamou, Carlier, Cuturi, Nenna, Peyre (2015). Iterative Bregman projections for
    regularized transportation problems. SIAM J. Sci. Comput. 37(2).
    Chapel, Flamary et al. (2020). Partial optimal transport with applications on
    positive-unlabeled learning (POT's ``ot.partial``).
"""
from __future__ import annotations

import torch

from soundseek.ot._core import Method, check_common, finish, marginal, run_blocks

__all__ = ["partial_sinkhorn", "partial_sinkhorn_log"]


def _partial_step(op, state: tuple, k: int) -> tuple[tuple, float]:
    phi, psi, r1, r2, log_a, log_b, log_mass, mass = state
    err = float("inf")
    for i in range(k):
        R = op.row(phi, psi)  # (..., n) log row-mass
        d1 = torch.clamp(log_a - (R + r1), max=0.0)
        s1 = r1 + d1
        phi, r1 = phi + s1, -d1
        Cm = op.col(phi, psi)  # (..., m) log column-mass
        d2 = torch.clamp(log_b - (Cm + r2), max=0.0)
        s2 = r2 + d2
        psi, r2 = psi + s2, -d2
        total = torch.logsumexp(Cm + s2, dim=-1)  # (...,) log total mass
        phi = phi + (log_mass - total).unsqueeze(-1)
        if i == k - 1:
            with torch.no_grad():
                e = (torch.exp(R) * torch.expm1(s1)).abs().sum(-1)
                e = e + (torch.exp(Cm) * torch.expm1(s2)).abs().sum(-1)
                e = e + (torch.exp(total) - mass).abs()
                err = float(e.max())
    return (phi, psi, r1, r2, log_a, log_b, log_mass, mass), err


def partial_sinkhorn_log(
    a,
    b,
    C,
    reg: float,
    mass: float,
    n_iter: int = 1000,
    tol: float = 1e-9,
    log: bool = False,
    warn: bool = True,
    method: Method = "auto",
    check_every: int = 10,
):
    """Log of the entropic partial-OT plan transporting ``mass``.

    Args:
        a: row weights (..., n) or (n,), strictly positive; ``None`` = uniform 1/n.
        b: column weights (..., m) or (m,), strictly positive; ``None`` = uniform 1/m.
        C: cost (..., n, m).
        reg: entropic regularisation > 0.
        mass: transported mass, ``0 < mass <= min(sum a, sum b)`` (m-LTM: 0.95 with
            uniform marginals).
        n_iter, tol, log, warn, method, check_every: as in :func:`soundseek.ot.sinkhorn_log`.

    Returns:
        log_plan (..., n, m); with ``log=True`` also ``{"n_iter", "err", "converged",
        "f", "g", ...}`` where ``log P = (f_i + g_j - C_ij) / reg``.
    """
    C = check_common(C, reg, n_iter, tol, method, check_every)
    a = marginal(a, C, -2, "a")
    b = marginal(b, C, -1, "b")
    mass = float(mass)
    limit = float(torch.minimum(a.sum(-1), b.sum(-1)).min())
    if not 0.0 < mass <= limit * (1 + 1e-12):
        raise ValueError(f"mass must satisfy 0 < mass <= min(sum a, sum b) = {limit:.6g}, got {mass!r}")
    Cs = C / reg  # (..., n, m)
    batch, n, m = C.shape[:-2], C.shape[-2], C.shape[-1]
    log_mass = torch.full(batch, mass, dtype=C.dtype, device=C.device).log()
    # start: Gibbs kernel rescaled to the target mass
    phi = (log_mass - torch.logsumexp(-Cs, dim=(-2, -1))).unsqueeze(-1).expand(*batch, n)
    psi = torch.zeros((*batch, m), dtype=C.dtype, device=C.device)
    r1 = torch.zeros((*batch, n), dtype=C.dtype, device=C.device)
    r2 = torch.zeros_like(psi)
    state = (phi, psi, r1, r2, torch.log(a), torch.log(b), log_mass, mass)
    state, info = run_blocks(
        Cs, state, _partial_step, int(n_iter), tol, method, int(check_every), step_reuses_kernel=True
    )
    phi, psi = state[0], state[1]
    log_plan = phi.unsqueeze(-1) + psi.unsqueeze(-2) - Cs
    return finish("partial_sinkhorn", "error", log_plan, phi, psi, reg, info, tol, log, warn)


def partial_sinkhorn(
    a,
    b,
    C,
    reg: float,
    mass: float,
    n_iter: int = 1000,
    tol: float = 1e-9,
    log: bool = False,
    warn: bool = True,
    method: Method = "auto",
    check_every: int = 10,
):
    """Entropic partial-OT plan (..., n, m); POT's ``entropic_partial_wasserstein(a, b, M, reg, m)``.

    Arguments as :func:`partial_sinkhorn_log`; returns ``exp`` of its log-plan.

    Example:
        >>> import torch
        >>> from soundseek.ot import partial_sinkhorn
        >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> P = partial_sinkhorn(None, None, C, reg=0.1, mass=0.5)
        >>> round(P.sum().item(), 6)
        0.5
    """
    out = partial_sinkhorn_log(a, b, C, reg, mass, n_iter, tol, log, warn, method, check_every)
    if log:
        return torch.exp(out[0]), out[1]
    return torch.exp(out)
