"""Shared machinery of the OT solvers: input checks and the two log-mass operators.

Every solver keeps dual potentials in *log units* (``phi = f / reg``) and never
forms the plan except as ``log P = phi_i + psi_j - C_ij / reg (+ const)``, so no
log of an underflowed plan is ever taken (METHODS.md section 6).

Row/column log-masses ``log sum_j exp(phi_i + psi_j - C_ij/reg)`` are computed by
one of two interchangeable operators:

- :class:`LogOp` -- an exact ``logsumexp`` over the matrix (always safe);
- :class:`KernelOp` -- the stabilised kernel trick of Schmitzer (2019): the
  potentials at the start of a block are absorbed into a kernel
  ``K = exp(phi0_i + psi0_j - C/reg)`` (i.e. the current plan, whose entries are
  well scaled) and within the block only the *changes* of the potentials are
  applied as scalings, so each log-mass costs one matrix-vector product instead
  of an ``exp`` of the whole matrix. A block whose changes grow too large or
  produce non-finite values is discarded and recomputed with :class:`LogOp`.
"""
from __future__ import annotations

import math
from typing import Callable, Literal, Sequence

import numpy as np
import torch

Method = Literal["auto", "log"]
METHODS: tuple[str, ...] = ("auto", "log")


class ConvergenceWarning(UserWarning):
    """An OT solver stopped at its iteration cap before reaching ``tol``."""


def as_tensor(x, like: torch.Tensor | None = None, name: str = "x") -> torch.Tensor:
    """numpy / list / tensor -> floating tensor (dtype and device of ``like`` if given)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        t = torch.as_tensor(np.asarray(x))
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")
    return t


def check_common(C, reg: float, n_iter: int, tol: float, method: str, check_every: int) -> torch.Tensor:
    C = as_tensor(C, name="C")
    if C.dim() < 2:
        raise ValueError(f"C must have shape (..., n, m), got {tuple(C.shape)}")
    if not torch.isfinite(C).all():
        raise ValueError("C must be finite")
    if not (isinstance(reg, (int, float)) and math.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a positive number, got {reg!r}")
    if int(n_iter) < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    if method not in METHODS:
        raise ValueError(f"Invalid method {method!r}. Valid: {', '.join(METHODS)}")
    if int(check_every) < 1:
        raise ValueError(f"check_every must be >= 1, got {check_every}")
    return C


def marginal(w, C: torch.Tensor, axis: int, name: str) -> torch.Tensor:
    """Weights of the rows (axis=-2) or columns (axis=-1) of C, broadcast to C's batch shape."""
    size = C.shape[axis]
    batch = C.shape[:-2]
    if w is None:
        return torch.full((*batch, size), 1.0 / size, dtype=C.dtype, device=C.device)
    w = as_tensor(w, like=C, name=name)
    if w.dim() == 0 or w.shape[-1] != size:
        raise ValueError(f"{name} must have shape (..., {size}) to match C {tuple(C.shape)}, got {tuple(w.shape)}")
    try:
        w = torch.broadcast_to(w, (*batch, size))
    except RuntimeError:
        raise ValueError(f"{name} of shape {tuple(w.shape)} does not broadcast to C's batch shape {tuple(batch)}") from None
    if not (w > 0).all() or not torch.isfinite(w).all():
        raise ValueError(f"{name} must be finite and strictly positive (drop zero-mass points)")
    return w


def effective_tol(tol: float, dtype: torch.dtype) -> float:
    """``tol`` raised to the rounding floor of the dtype (100 eps; 1.2e-5 for float32).

    ``tol == 0`` is kept: it means "run exactly n_iter iterations" (no early stop).
    """
    if tol == 0:
        return -1.0
    return max(float(tol), 100.0 * torch.finfo(dtype).eps)


class LogOp:
    """Exact log-masses by ``logsumexp`` over the (scaled) cost matrix ``Cs = C / reg``."""

    kind = "log"

    def __init__(self, Cs: torch.Tensor) -> None:
        self.Cs = Cs  # (..., n, m)

    def row(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """log sum_j exp(phi_i + psi_j - Cs_ij) -> (..., n)."""
        return phi + torch.logsumexp(psi.unsqueeze(-2) - self.Cs, dim=-1)

    def col(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        """log sum_i exp(phi_i + psi_j - Cs_ij) -> (..., m)."""
        return psi + torch.logsumexp(phi.unsqueeze(-1) - self.Cs, dim=-2)


class KernelOp:
    """Log-masses through a kernel absorbed at base potentials (phi0, psi0); see module doc."""

    kind = "kernel"

    def __init__(self, Cs: torch.Tensor, phi0: torch.Tensor, psi0: torch.Tensor) -> None:
        self.phi0, self.psi0 = phi0, psi0
        if torch.is_grad_enabled() and (Cs.requires_grad or phi0.requires_grad or psi0.requires_grad):
            self.K = torch.exp(phi0.unsqueeze(-1) + psi0.unsqueeze(-2) - Cs)
        else:  # in place: one (n, m) buffer
            K = torch.sub(psi0.unsqueeze(-2), Cs)
            K.add_(phi0.unsqueeze(-1)).exp_()
            self.K = K
        # largest admissible potential change inside a block (Schmitzer's tau)
        self.tau = 0.25 * math.log(torch.finfo(Cs.dtype).max)

    def row(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        v = torch.exp(psi - self.psi0)  # (..., m)
        Kv = torch.matmul(self.K, v.unsqueeze(-1)).squeeze(-1)  # (..., n)
        return (phi - self.phi0) + torch.log(Kv)

    def col(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        u = torch.exp(phi - self.phi0)  # (..., n)
        uK = torch.matmul(u.unsqueeze(-2), self.K).squeeze(-2)  # (..., m)
        return (psi - self.psi0) + torch.log(uK)

    def valid(self, tensors: Sequence[torch.Tensor]) -> bool:
        """True if the block stayed finite and its potentials moved less than tau."""
        with torch.no_grad():
            for t in tensors:
                if isinstance(t, torch.Tensor) and not torch.isfinite(t).all():
                    return False
            moves = [(tensors[0] - self.phi0).abs().max(), (tensors[1] - self.psi0).abs().max()]
            return bool(max(float(x) for x in moves) < self.tau)


Step = Callable[[object, tuple, int], tuple[tuple, float]]


def run_blocks(
    Cs: torch.Tensor,
    state: tuple,
    step: Step,
    n_iter: int,
    tol: float,
    method: str,
    check_every: int,
) -> tuple[tuple, dict]:
    """Run ``step(op, state, k)`` in blocks of ``check_every`` iterations until ``err <= tol``.

    ``state[0]`` / ``state[1]`` are the row / column potentials (log units); ``step``
    returns the new state and the block's marginal error (a float). Returns the final
    state and ``{"n_iter", "err", "converged", "kernel_blocks", "log_blocks"}``.
    """
    tol = effective_tol(tol, Cs.dtype)
    it, err, converged = 0, float("inf"), False
    n_kernel = n_log = 0
    while it < n_iter:
        k = min(check_every, n_iter - it)
        new = None
        if method == "auto":
            op = KernelOp(Cs, state[0], state[1])
            new, err = step(op, state, k)
            if not (math.isfinite(err) and op.valid(new)):
                new = None
            else:
                n_kernel += 1
            del op
        if new is None:
            new, err = step(LogOp(Cs), state, k)
            n_log += 1
        state = new
        it += k
        if err <= tol:
            converged = True
            break
    return state, {"n_iter": it, "err": err, "converged": converged, "kernel_blocks": n_kernel, "log_blocks": n_log}
