"""Entropic optimal transport by log-domain Sinkhorn iterations (METHODS.md sections 6 and 8).

Solves, for every leading batch index of ``C`` (..., n, m),

    P* = argmin_{P 1 = a, P^T 1 = b}  <P, C> - reg * H(P),   H(P) = -sum P (log P - 1),

the problem of POT's ``ot.sinkhorn(a, b, M, reg)``. The solution has the form
``P_ij = exp((f_i + g_j - C_ij) / reg)`` with dual potentials f (..., n), g (..., m),
which are what the iterations update (``f <- reg log a - reg logsumexp_j((g_j - C_ij)/reg)``,
then the same for g), so tiny ``reg`` does not underflow the way the kernel-space
iteration ``u = a / (K v)`` with ``K = exp(-C/reg)`` does.

Speed: with ``method="auto"`` (default) the log-masses are taken through a kernel
re-absorbed every ``check_every`` iterations (see ``soundseek.ot._core``); blocks
that would lose precision are recomputed exactly with ``logsumexp``. ``method="log"``
always uses ``logsumexp`` (slower, the reference). Both are differentiable by
autograd through the iterations (memory: one (n, m) kernel per block for "auto",
one per iteration for "log").

Convergence: every ``check_every`` iterations the L1 violation of the row marginal
(columns are exact after the g-update) is compared with ``tol``; the maximum over the
batch must be ``<= tol``. ``tol`` is raised to the dtype's rounding floor
(100 * eps: 1.2e-5 in float32); ``tol=0`` runs exactly ``n_iter`` iterations. If the cap ``n_iter`` is reached first a
:class:`ConvergenceWarning` is issued (``warn=False`` silences it).

References:
    Cuturi (2013), Sinkhorn distances. Peyre & Cuturi (2019), Computational OT, ch. 4.
    Schmitzer (2019), Stabilized sparse scaling algorithms for entropy regularized
    transport problems.
"""
from __future__ import annotations

import warnings

import torch

from soundseek.ot._core import ConvergenceWarning, Method, check_common, marginal, run_blocks

__all__ = ["ConvergenceWarning", "sinkhorn", "sinkhorn_log"]


def _mv(K: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """K (..., n, m) @ v (..., m) -> (..., n)."""
    return K @ v if K.dim() == 2 else torch.matmul(K, v.unsqueeze(-1)).squeeze(-1)


def _vm(u: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """u (..., n) @ K (..., n, m) -> (..., m)."""
    return u @ K if K.dim() == 2 else torch.matmul(u.unsqueeze(-2), K).squeeze(-2)


def _kernel_step(op, state: tuple, k: int) -> tuple[tuple, float]:
    """k scaling iterations u = a / (K v), v = b / (K^T u) on the absorbed kernel K."""
    phi, psi, log_a, log_b, a, b = state
    K = op.K  # (..., n, m) = current plan
    u = torch.ones_like(phi)  # (..., n)
    v = torch.ones_like(psi)  # (..., m)
    err = float("inf")
    for i in range(k):
        Kv = _mv(K, v)
        if i == k - 1:
            with torch.no_grad():
                err = float((u * Kv - a).abs().sum(-1).max())
        u = a / Kv
        v = b / _vm(u, K)
    return (phi + torch.log(u), psi + torch.log(v), log_a, log_b, a, b), err


def _sinkhorn_step(op, state: tuple, k: int) -> tuple[tuple, float]:
    if op.kind == "kernel":
        return _kernel_step(op, state, k)
    phi, psi, log_a, log_b, a, b = state
    err = float("inf")
    for i in range(k):
        r = op.row(phi, psi)  # (..., n) current log row-mass
        if i == k - 1:
            with torch.no_grad():
                err = float((torch.exp(r) - a).abs().sum(-1).max())
        phi = phi + (log_a - r)
        psi = psi + (log_b - op.col(phi, psi))
    return (phi, psi, log_a, log_b, a, b), err


def sinkhorn_log(
    a,
    b,
    C,
    reg: float,
    n_iter: int = 1000,
    tol: float = 1e-9,
    log: bool = False,
    warn: bool = True,
    method: Method = "auto",
    check_every: int = 10,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """Log of the entropic OT plan, ``log P = (f_i + g_j - C_ij) / reg``.

    Use this (not ``sinkhorn(...).log()``) wherever a loss needs ``log pi``.

    Args:
        a: row weights (..., n) or (n,), strictly positive; ``None`` = uniform 1/n.
        b: column weights (..., m) or (m,), strictly positive, same total mass as ``a``;
            ``None`` = uniform 1/m.
        C: cost (..., n, m), torch or numpy (numpy -> torch).
        reg: entropic regularisation eps > 0 (in the units of C).
        n_iter: iteration cap (one iteration = an f- and a g-update).
        tol: stop when the L1 row-marginal violation (max over the batch) is <= tol.
        log: also return a diagnostics dict.
        warn: issue a ConvergenceWarning when the cap is reached before tol.
        method: "auto" (stabilised kernel blocks with exact fallback) or "log".
        check_every: iterations per block / between convergence checks.
        init: optional warm start (f, g) in cost units.

    Returns:
        log_plan (..., n, m), and with ``log=True`` also
        ``{"n_iter", "err", "converged", "f", "g", ...}`` (f (..., n), g (..., m) in cost units).
    """
    C = check_common(C, reg, n_iter, tol, method, check_every)
    a = marginal(a, C, -2, "a")
    b = marginal(b, C, -1, "b")
    ma, mb = a.sum(-1), b.sum(-1)
    if not torch.allclose(ma, mb, rtol=1e-6, atol=0.0):
        raise ValueError(
            f"a and b must have the same total mass (got {ma.max().item():.6g} vs {mb.max().item():.6g}); "
            "use soundseek.ot.partial_sinkhorn for unequal masses"
        )
    Cs = C / reg  # (..., n, m)
    if init is None:
        phi = torch.zeros(C.shape[:-1], dtype=C.dtype, device=C.device)
        psi = torch.zeros((*C.shape[:-2], C.shape[-1]), dtype=C.dtype, device=C.device)
    else:
        phi = torch.broadcast_to(torch.as_tensor(init[0], dtype=C.dtype) / reg, C.shape[:-1])
        psi = torch.broadcast_to(torch.as_tensor(init[1], dtype=C.dtype) / reg, (*C.shape[:-2], C.shape[-1]))
    state = (phi, psi, torch.log(a), torch.log(b), a, b)
    state, info = run_blocks(Cs, state, _sinkhorn_step, int(n_iter), tol, method, int(check_every))
    phi, psi = state[0], state[1]
    if warn and not info["converged"]:
        warnings.warn(
            f"sinkhorn did not converge in {info['n_iter']} iterations "
            f"(marginal error {info['err']:.3g} > tol {tol:.3g}); increase n_iter or reg",
            ConvergenceWarning,
            stacklevel=2,
        )
    log_plan = phi.unsqueeze(-1) + psi.unsqueeze(-2) - Cs
    if not log:
        return log_plan
    info.update(f=phi * reg, g=psi * reg)
    return log_plan, info


def sinkhorn(
    a,
    b,
    C,
    reg: float,
    n_iter: int = 1000,
    tol: float = 1e-9,
    log: bool = False,
    warn: bool = True,
    method: Method = "auto",
    check_every: int = 10,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """Entropic OT plan (..., n, m) with marginals a, b; POT's ``ot.sinkhorn(a, b, M, reg)``.

    Arguments as :func:`sinkhorn_log`; returns ``exp`` of its log-plan (and the dict if
    ``log=True``).

    Example:
        >>> import torch
        >>> from soundseek.ot import sinkhorn
        >>> C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> P = sinkhorn(None, None, C, reg=0.1)
        >>> [round(x, 4) for x in P.sum(0).tolist()]
        [0.5, 0.5]
    """
    out = sinkhorn_log(a, b, C, reg, n_iter, tol, log, warn, method, check_every, init)
    if log:
        return torch.exp(out[0]), out[1]
    return torch.exp(out)

