"""Projection heads: 2-layer MLP (Linear-ReLU-Linear) to the shared space d, then L2
normalisation (METHODS §3, "Projection")."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``x / max(||x||, eps)`` along the last dimension (a zero vector stays zero)."""
    return F.normalize(x, dim=-1, eps=eps)


class ProjectionHead(nn.Module):
    """Linear(in_dim -> hidden) - ReLU - Dropout - Linear(hidden -> out_dim) [- L2 norm].

    Args:
        in_dim: input feature size (encoder output).
        out_dim: d, the shared embedding size.
        hidden: hidden width (default ``out_dim``).
        dropout: dropout after the ReLU (training only).
        normalize: L2-normalise the output along the last dimension.

    Shapes: (..., in_dim) -> (..., out_dim); works framewise on (B, T, in_dim).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int | None = None,
        dropout: float = 0.0,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        for name, v in (("in_dim", in_dim), ("out_dim", out_dim), ("hidden", hidden or out_dim)):
            if int(v) <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        hidden = int(hidden or out_dim)
        self.in_dim, self.out_dim, self.normalize = int(in_dim), int(out_dim), bool(normalize)
        self.fc1 = nn.Linear(self.in_dim, hidden)
        self.drop = nn.Dropout(float(dropout))
        self.fc2 = nn.Linear(hidden, self.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"ProjectionHead expects last dimension {self.in_dim}, got {x.shape[-1]}")
        y = self.fc2(self.drop(F.relu(self.fc1(x))))
        return l2_normalize(y) if self.normalize else y


HEAD_KINDS = ("mlp", "linear", "identity")


class LinearHead(nn.Module):
    """Linear(in_dim -> out_dim) [- L2 norm]: a projection that keeps the encoder's geometry
    up to one linear map. Shapes as :class:`ProjectionHead`."""

    def __init__(self, in_dim: int, out_dim: int, normalize: bool = True) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.normalize = int(in_dim), int(out_dim), bool(normalize)
        self.fc = nn.Linear(self.in_dim, self.out_dim)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"LinearHead expects last dimension {self.in_dim}, got {x.shape[-1]}")
        y = self.fc(x)
        return l2_normalize(y) if self.normalize else y


class IdentityHead(nn.Module):
    """No projection [- L2 norm]: the encoder's own space is the shared space (a locked tower
    whose geometry the other tower learns to match, as in LiT, Zhai et al. 2022)."""

    def __init__(self, in_dim: int, out_dim: int, normalize: bool = True) -> None:
        super().__init__()
        if int(in_dim) != int(out_dim):
            raise ValueError(f"an identity head needs embed_dim equal to its input size {in_dim}, got {out_dim}")
        self.in_dim = self.out_dim = int(in_dim)
        self.normalize = bool(normalize)

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.in_dim:
            raise ValueError(f"IdentityHead expects last dimension {self.in_dim}, got {x.shape[-1]}")
        return l2_normalize(x) if self.normalize else x


def build_head(kind: str, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.0,
               normalize: bool = True) -> nn.Module:
    """A head by kind: ``"mlp"`` (:class:`ProjectionHead`), ``"linear"`` or ``"identity"``."""
    if kind == "mlp":
        return ProjectionHead(in_dim, out_dim, hidden, dropout, normalize)
    if kind == "linear":
        return LinearHead(in_dim, out_dim, normalize)
    if kind == "identity":
        return IdentityHead(in_dim, out_dim, normalize)
    raise ValueError(f"Invalid head {kind!r}. Valid: {', '.join(HEAD_KINDS)}")
