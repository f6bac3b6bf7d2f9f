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

import math

import torch

from soundseek.ot._core import (
    ConvergenceWarning,
    LogOp,
    Method,
    check_common,
    effective_tol,
    finish,
    grad_needed,
    kernel_tau,
    marginal,
    run_blocks,
)

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


# Row blocks of the kernel in the fused iteration: one block's K v and K^T u read the same
# rows, the second time from cache, so a large kernel is streamed from memory once per
# iteration instead of twice (kernels up to FUSE_MIN_BYTES use two plain products).
FUSE_BLOCK_BYTES = 1 << 20
FUSE_MIN_BYTES = 8 << 20


def _fast_sinkhorn(
    C: torch.Tensor,
    reg: float,
    phi: torch.Tensor,
    psi: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    n_iter: int,
    tol: float,
    method: str,
    check_every: int,
) -> tuple[torch.Tensor, torch.Tensor, dict, torch.Tensor]:
    """Sinkhorn without autograd: in-place scaling iterations on a lazily re-absorbed kernel.

    State: base potentials (phi0, psi0), the kernel ``K = exp(phi0 + psi0 - C / reg)`` (one
    preallocated (..., n, m) buffer) and scalings u, v, with ``phi = phi0 + log u``,
    ``psi = psi0 + log v``. Each iteration is ``u = a / (K v)``, ``v = b / (K^T u)``
    (matrix-vector products into preallocated outputs; for a large single kernel fused
    row block by row block). After every block of ``check_every`` iterations the scalings
    are checked: a block with non-finite values or scalings beyond ``exp(+-tau)`` is
    discarded and redone with exact ``logsumexp`` (:class:`LogOp`); the kernel is
    re-absorbed (one ``exp`` of the matrix) only after such a block or once the scalings
    pass ``exp(+-tau/2)``. ``method="log"`` runs only LogOp blocks.

    Returns phi, psi (shapes of the inputs), the info dict and the log-plan
    ``phi_i + psi_j - C_ij / reg`` (written into the kernel buffer).
    """
    tol = effective_tol(tol, C.dtype)
    n, m = C.shape[-2], C.shape[-1]
    B = math.prod(C.shape[:-2])
    C3 = C.reshape(B, n, m)
    a2, b2 = a.reshape(B, n).contiguous(), b.reshape(B, m).contiguous()
    phi0, psi0 = phi.reshape(B, n).clone(), psi.reshape(B, m).clone()
    K = torch.empty((B, n, m), dtype=C.dtype, device=C.device)

    def fill(exp: bool, zero: bool = False) -> None:
        """K <- phi0 + psi0 - C / reg, or its exp (computed as (-(C / reg) + psi0) + phi0)."""
        torch.div(C3, -reg, out=K)
        if not zero:
            K.add_(psi0.unsqueeze(-2)).add_(phi0.unsqueeze(-1))
        if exp:
            K.exp_()

    def absorb(zero: bool = False) -> None:  # K <- exp(phi0 + psi0 - C / reg)
        fill(True, zero)

    def log_block(k: int) -> float:  # k exact iterations from (phi0, psi0)
        nonlocal phi0, psi0
        state = (phi0, psi0, torch.log(a2), torch.log(b2), a2, b2)
        (phi0, psi0, *_), e = _sinkhorn_step(LogOp(C3 / reg), state, k)
        return e

    def done(info: dict) -> tuple[torch.Tensor, torch.Tensor, dict, torch.Tensor]:
        fill(False)
        log_plan = K.view(C.shape)
        return phi0.reshape(phi.shape), psi0.reshape(psi.shape), info, log_plan

    it, err, converged, n_kernel, n_log = 0, float("inf"), False, 0, 0
    if method == "log":
        while it < n_iter:
            k = min(check_every, n_iter - it)
            err = log_block(k)
            n_log += 1
            it += k
            if err <= tol:
                converged = True
                break
        return done({"n_iter": it, "err": err, "converged": converged, "kernel_blocks": 0, "log_blocks": n_log})

    tau = kernel_tau(C.dtype)
    hi, lo = math.exp(tau), math.exp(-tau)  # admissible range of the scalings in a block
    hi2, lo2 = math.exp(tau / 2), math.exp(-tau / 2)  # beyond this: re-absorb before the next block
    absorb(zero=not (bool(phi0.any()) or bool(psi0.any())))
    u = torch.ones_like(phi0)
    v = torch.ones_like(psi0)
    u0, v0 = torch.empty_like(u), torch.empty_like(v)  # scalings at the start of a block
    Kv, KTu, tmp = torch.empty_like(u), torch.empty_like(v), torch.empty_like(u)
    itemsize = K.element_size()
    if B == 1 and n * m * itemsize > FUSE_MIN_BYTES:
        # fused: per row block I, Kv_I = K_I v, u_I = a_I / Kv_I, KTu += K_I^T u_I
        K2, a1, b1, u1, v1, Kv1, KTu1, tmp1 = K[0], a2[0], b2[0], u[0], v[0], Kv[0], KTu[0], tmp[0]
        rows = max(8, FUSE_BLOCK_BYTES // (m * itemsize))
        blocks = [
            (K2[i : i + rows], K2[i : i + rows].mT, a1[i : i + rows], u1[i : i + rows], Kv1[i : i + rows], tmp1[i : i + rows])
            for i in range(0, n, rows)
        ]
        first, rest = blocks[0], blocks[1:]

        def iteration(last: bool) -> None:
            Kb, KbT, ab, ub, kvb, tb = first
            torch.mv(Kb, v1, out=kvb)
            if last:
                torch.mul(ub, kvb, out=tb)
            torch.div(ab, kvb, out=ub)
            torch.mv(KbT, ub, out=KTu1)
            for Kb, KbT, ab, ub, kvb, tb in rest:
                torch.mv(Kb, v1, out=kvb)
                if last:
                    torch.mul(ub, kvb, out=tb)
                torch.div(ab, kvb, out=ub)
                KTu1.addmv_(KbT, ub)
            torch.div(b1, KTu1, out=v1)

    else:
        if B == 1:  # plain matrix-vector products on 1-d views
            K2, KT2 = K[0], K[0].mT
            Kv1, KTu1, u1, v1 = Kv[0], KTu[0], u[0], v[0]

            def row() -> None:
                torch.mv(K2, v1, out=Kv1)

            def col() -> None:
                torch.mv(KT2, u1, out=KTu1)

        else:
            Kv3, KTu3, u3, v3 = Kv.unsqueeze(-1), KTu.unsqueeze(-2), u.unsqueeze(-2), v.unsqueeze(-1)

            def row() -> None:
                torch.bmm(K, v3, out=Kv3)

            def col() -> None:
                torch.bmm(u3, K, out=KTu3)

        def iteration(last: bool) -> None:
            row()
            if last:
                torch.mul(u, Kv, out=tmp)
            torch.div(a2, Kv, out=u)
            col()
            torch.div(b2, KTu, out=v)

    stale = False  # scalings large: fold them into the kernel before the next block
    while it < n_iter:
        k = min(check_every, n_iter - it)
        if stale:
            phi0.add_(torch.log(u))
            psi0.add_(torch.log(v))
            absorb()
            u.fill_(1.0)
            v.fill_(1.0)
            stale = False
        u0.copy_(u)
        v0.copy_(v)
        for i in range(k):
            iteration(i == k - 1)  # the last one also leaves u_old * K v_old in tmp
        # L1 row-marginal violation before the last row update, and the scalings' range
        err_t = tmp.sub_(a2).abs_().sum(-1).max()
        err, umin, umax, vmin, vmax = torch.stack((err_t, *torch.aminmax(u), *torch.aminmax(v))).tolist()
        if math.isfinite(err) and lo < umin and umax < hi and lo < vmin and vmax < hi:
            n_kernel += 1
            stale = not (lo2 < umin and umax < hi2 and lo2 < vmin and vmax < hi2)
        else:  # redo the block exactly from its start, then re-absorb
            phi0.add_(torch.log(u0))
            psi0.add_(torch.log(v0))
            err = log_block(k)
            absorb()
            u.fill_(1.0)
            v.fill_(1.0)
            n_log += 1
        it += k
        if err <= tol:
            converged = True
            break
    phi0.add_(torch.log(u))
    psi0.add_(torch.log(v))
    return done({"n_iter": it, "err": err, "converged": converged, "kernel_blocks": n_kernel, "log_blocks": n_log})


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
    if init is None:
        phi = torch.zeros(C.shape[:-1], dtype=C.dtype, device=C.device)
        psi = torch.zeros((*C.shape[:-2], C.shape[-1]), dtype=C.dtype, device=C.device)
    else:
        phi = torch.broadcast_to(torch.as_tensor(init[0], dtype=C.dtype) / reg, C.shape[:-1])
        psi = torch.broadcast_to(torch.as_tensor(init[1], dtype=C.dtype) / reg, (*C.shape[:-2], C.shape[-1]))
    if grad_needed(C, a, b, phi, psi):  # iterations recorded by autograd
        Cs = C / reg  # (..., n, m)
        state = (phi, psi, torch.log(a), torch.log(b), a, b)
        state, info = run_blocks(Cs, state, _sinkhorn_step, int(n_iter), tol, method, int(check_every))
        phi, psi = state[0], state[1]
        log_plan = phi.unsqueeze(-1) + psi.unsqueeze(-2) - Cs
    else:  # in place, one (..., n, m) buffer
        phi, psi, info, log_plan = _fast_sinkhorn(C, reg, phi, psi, a, b, int(n_iter), tol, method, int(check_every))
    return finish("sinkhorn", "marginal error", log_plan, phi, psi, reg, info, tol, log, warn)


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
    log_plan = out[0] if log else out
    # without autograd the log-plan is a fresh buffer of ours: exponentiate it in place
    plan = torch.exp(log_plan) if log_plan.requires_grad else log_plan.exp_()
    return (plan, out[1]) if log else plan

