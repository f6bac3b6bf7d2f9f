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
