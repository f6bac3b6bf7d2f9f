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


def as_tensor(x, like: torch.Tensor | None = None, name: str = "x", check_nan: bool = True) -> torch.Tensor:
    """numpy / list / tensor -> floating tensor (dtype and device of ``like`` if given)."""
    if isinstance(x, torch.Tensor):
        t = x
    else:
        t = torch.as_tensor(np.asarray(x))
    if like is not None:
        t = t.to(dtype=like.dtype, device=like.device)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if check_nan and torch.isnan(t).any():
        raise ValueError(f"{name} contains NaN")
    return t


def check_common(C, reg: float, n_iter: int, tol: float, method: str, check_every: int) -> torch.Tensor:
    C = as_tensor(C, name="C", check_nan=False)
    if C.dim() < 2:
        raise ValueError(f"C must have shape (..., n, m), got {tuple(C.shape)}")
    if C.numel() > 0:
        # one pass, no temporaries: min and max are finite iff every entry is (NaN propagates)
        lo, hi = torch.aminmax(C.detach())
        if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
            if torch.isnan(C).any():
                raise ValueError("C contains NaN")
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


def grad_needed(*tensors) -> bool:
    """True if autograd is on and any of the tensors requires grad."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def kernel_tau(dtype: torch.dtype) -> float:
    """Largest admissible potential change (log units) on one absorbed kernel (Schmitzer's tau)."""
    return 0.25 * math.log(torch.finfo(dtype).max)


def absorb_kernel(
    Cs: torch.Tensor, phi0: torch.Tensor, psi0: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``K = exp(phi0_i + psi0_j - Cs_ij)``; without autograd computed in place (into ``out`` if given)."""
    if grad_needed(Cs, phi0, psi0):
        return torch.exp(phi0.unsqueeze(-1) + psi0.unsqueeze(-2) - Cs)
    K = torch.sub(psi0.unsqueeze(-2), Cs, out=out)
    return K.add_(phi0.unsqueeze(-1)).exp_()


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

    def __init__(
        self, Cs: torch.Tensor, phi0: torch.Tensor, psi0: torch.Tensor, out: torch.Tensor | None = None
    ) -> None:
        self.phi0, self.psi0 = phi0, psi0
        self.K = absorb_kernel(Cs, phi0, psi0, out=out)  # out: reuse a buffer (no autograd)
        # largest admissible potential change inside a block (Schmitzer's tau)
        self.tau = kernel_tau(Cs.dtype)

    def row(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        v = torch.exp(psi - self.psi0)  # (..., m)
        Kv = torch.matmul(self.K, v.unsqueeze(-1)).squeeze(-1)  # (..., n)
        return (phi - self.phi0) + torch.log(Kv)

    def col(self, phi: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
        u = torch.exp(phi - self.phi0)  # (..., n)
        uK = torch.matmul(u.unsqueeze(-2), self.K).squeeze(-2)  # (..., m)
        return (psi - self.psi0) + torch.log(uK)

    def moved(self, tensors: Sequence[torch.Tensor]) -> float:
        """Largest potential change since absorption (inf / nan if the block is not finite)."""
        with torch.no_grad():
            for t in tensors:
                if isinstance(t, torch.Tensor) and t.numel() > 0 and not torch.isfinite(t).all():
                    return math.inf
            moves = torch.stack([(tensors[0] - self.phi0).abs().max(), (tensors[1] - self.psi0).abs().max()])
            return float(moves.max())

    def valid(self, tensors: Sequence[torch.Tensor]) -> bool:
        """True if the block stayed finite and its potentials moved less than tau."""
        return self.moved(tensors) < self.tau


Step = Callable[[object, tuple, int], tuple[tuple, float]]


def run_blocks(
    Cs: torch.Tensor,
    state: tuple,
    step: Step,
    n_iter: int,
    tol: float,
    method: str,
    check_every: int,
    step_reuses_kernel: bool = False,
) -> tuple[tuple, dict]:
    """Run ``step(op, state, k)`` in blocks of ``check_every`` iterations until ``err <= tol``.

    ``state[0]`` / ``state[1]`` are the row / column potentials (log units); ``step``
    returns the new state and the block's marginal error (a float). Returns the final
    state and ``{"n_iter", "err", "converged", "kernel_blocks", "log_blocks"}``.
    ``step_reuses_kernel``: ``step`` works from any potentials (not only the kernel's base
    ones), so without autograd a kernel may serve several blocks.
    """
    tol = effective_tol(tol, Cs.dtype)
    it, err, converged = 0, float("inf"), False
    n_kernel = n_log = 0
    # without autograd one kernel is kept across blocks (re-absorbed in place into the same
    # buffer once the potentials drift past tau / 2); with autograd every block absorbs anew
    reuse = step_reuses_kernel and not grad_needed(Cs, *state)
    op: KernelOp | None = None
    buf: torch.Tensor | None = None
    while it < n_iter:
        k = min(check_every, n_iter - it)
        new = None
        if method == "auto":
            if op is None:
                op = KernelOp(Cs, state[0], state[1], out=buf)
            new, err = step(op, state, k)
            moved = op.moved(new)
            if not (math.isfinite(err) and moved < op.tau):
                new = None
            else:
                n_kernel += 1
            if reuse and new is not None and moved < 0.5 * op.tau:
                pass  # keep the kernel for the next block
            else:
                buf = op.K if reuse else None
                op = None
        if new is None:
            new, err = step(LogOp(Cs), state, k)
            n_log += 1
        state = new
        it += k
        if err <= tol:
            converged = True
            break
    return state, {"n_iter": it, "err": err, "converged": converged, "kernel_blocks": n_kernel, "log_blocks": n_log}


def finish(solver: str, error_name: str, log_plan: torch.Tensor, phi: torch.Tensor, psi: torch.Tensor,
           reg: float, info: dict, tol: float, log: bool, warn: bool):
    """Common tail of the solvers: warn if not converged; return the log-plan (and diagnostics)."""
    import warnings

    if warn and not info["converged"]:
        warnings.warn(
            f"{solver} did not converge in {info['n_iter']} iterations "
            f"({error_name} {info['err']:.3g} > tol {tol:.3g}); increase n_iter or reg",
            ConvergenceWarning,
            stacklevel=3,
        )
    if not log:
        return log_plan
    info.update(f=phi * reg, g=psi * reg)
    return log_plan, info

