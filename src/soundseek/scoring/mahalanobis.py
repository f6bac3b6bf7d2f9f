"""Learnable Mahalanobis ground metric ``d_M(x, y) = sqrt((x - y)^T M (x - y))`` (METHODS §6).

Used by m-LTM (seed 003, eq. 9) as the ground cost of the transport plan; a scorer built on it
returns ``-pairwise_distance`` as its similarity.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

PARAMETRIZATIONS = ("full", "cholesky")
INITS = ("identity", "random")


class MahalanobisMetric(nn.Module):
    """A d x d symmetric PSD matrix M and the distances it induces (full quadratic form).

    Parametrisations:

    - ``"full"``: a free d x d parameter W; ``M = (W + W^T) / 2`` (the quadratic form only sees
      the symmetric part). Keep M PSD by projected gradient: call :meth:`project_` after every
      optimiser step (symmetrise, ``eigh``, clamp eigenvalues at 0, write back). This is the
      m-LTM training scheme; unlike the public m-LTM code it uses the FULL matrix (that code
      keeps only ``diag(M)``) and projects with ``eigh`` (clamping the singular values of an
      SVD, as printed, is a no-op: they are never negative).
    - ``"cholesky"``: ``M = L L^T`` with L lower-triangular (``tril`` of a free parameter);
      PSD by construction, :meth:`project_` only re-zeroes the upper triangle.

    Distances use ``x^T M x + y^T M y - 2 x^T M y`` (one matrix product for all pairs), clamped
    at 0 and with ``eps`` inside the square root so the gradient stays finite at x = y.

    Args:
        dim: embedding width d.
        parametrization: ``"full"`` or ``"cholesky"``.
        init: ``"identity"`` (M = I: the Euclidean distance) or ``"random"`` (a random PSD M
            with unit average eigenvalue, from the global torch RNG).
        eps: added inside the square root.

    Shapes:
        pairwise_distance: x (n, d), y (m, d) -> (n, m); paired_distance: (n, d), (n, d) -> (n,).

    References:
        METHODS.md §6; seed 003 §3.2 (Mahalanobis-enhanced ground metric, projected
        gradient); Xing et al. 2002 (metric learning with side information).

    Example:
        >>> import torch
        >>> metric = MahalanobisMetric(2)
        >>> x = torch.tensor([[0.0, 0.0]]); y = torch.tensor([[3.0, 4.0]])
        >>> round(metric.pairwise_distance(x, y).item(), 4)
        5.0
        >>> with torch.no_grad():
        ...     _ = metric.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
        >>> metric.project_()                    # eigenvalue -1 clamped to 0
        >>> metric.matrix().detach()
        tensor([[1., 0.],
                [0., 0.]])
    """

    def __init__(self, dim: int, parametrization: str = "full", init: str = "identity",
                 eps: float = 1e-8) -> None:
        super().__init__()
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        if parametrization not in PARAMETRIZATIONS:
            raise ValueError(f"Invalid parametrization {parametrization!r}. Valid: {', '.join(PARAMETRIZATIONS)}")
        if init not in INITS:
            raise ValueError(f"Invalid init {init!r}. Valid: {', '.join(INITS)}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.dim = dim
        self.parametrization = parametrization
        self.eps = float(eps)
        if init == "identity":
            w = torch.eye(dim)
        else:
            a = torch.randn(dim, dim) / math.sqrt(dim)
            w = a @ a.t() if parametrization == "full" else torch.linalg.cholesky(a @ a.t() + 1e-3 * torch.eye(dim))
        # "full": W with M = sym(W); "cholesky": L = tril(W), M = L L^T
        self.weight = nn.Parameter(w)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, parametrization={self.parametrization!r}"

    def matrix(self) -> Tensor:
        """The metric matrix M (d, d), symmetric (and PSD unless "full" is off the PSD cone)."""
        if self.parametrization == "full":
            return 0.5 * (self.weight + self.weight.t())
        low = torch.tril(self.weight)
        return low @ low.t()

    def _sqrt(self, sq: Tensor) -> Tensor:
        return torch.sqrt(sq.clamp(min=0) + self.eps)

    def pairwise_distance(self, x: Tensor, y: Tensor) -> Tensor:
        """All-pairs distances ``D[i, j] = sqrt((x_i - y_j)^T M (x_i - y_j) + eps)``, (n, m)."""
        if x.dim() != 2 or y.dim() != 2 or x.shape[1] != self.dim or y.shape[1] != self.dim:
            raise ValueError(f"expected x (n, {self.dim}) and y (m, {self.dim}), got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        m = self.matrix().to(x.dtype)  # (d, d)
        xm = x @ m  # (n, d)
        ym = y @ m  # (m, d)
        sq = (xm * x).sum(-1)[:, None] + (ym * y).sum(-1)[None, :] - 2.0 * xm @ y.t()  # (n, m)
        return self._sqrt(sq)

    def paired_distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Distances of aligned rows ``d(x_i, y_i)``, (n,)."""
        if x.shape != y.shape or x.dim() != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected x, y both (n, {self.dim}), got {tuple(x.shape)} and {tuple(y.shape)}")
        diff = x - y  # (n, d)
        return self._sqrt(((diff @ self.matrix().to(x.dtype)) * diff).sum(-1))

    @torch.no_grad()
    def project_(self) -> None:
        """Project M onto the PSD cone in place (no grad). Call after each optimiser step.

        "full": ``W <- V max(Lambda, 0) V^T`` with ``sym(W) = V Lambda V^T`` (eigh); a PSD
        symmetric W is left unchanged (up to round-off). "cholesky": zero the upper triangle.
        """
        if self.parametrization == "cholesky":
            self.weight.copy_(torch.tril(self.weight))
            return
        sym = 0.5 * (self.weight + self.weight.t())
        evals, evecs = torch.linalg.eigh(sym)
        self.weight.copy_((evecs * evals.clamp(min=0)) @ evecs.t())

    def nuclear_norm(self) -> Tensor:
        """Nuclear norm of M (differentiable regulariser); equals ``trace(M)`` for PSD M."""
        if self.parametrization == "cholesky":
            return torch.tril(self.weight).pow(2).sum()  # trace(L L^T) = ||L||_F^2
        return torch.linalg.eigvalsh(self.matrix()).abs().sum()  # M symmetric: sum |eigenvalues|
