"""Masked text-agnostic pooling of frame sequences: mean, max, meanmax (METHODS §4).

Every pooling takes ``frames (B, T, D)`` and ``mask (B, T)`` (True = valid frame, ``None`` =
all valid) and returns ``(B, D)``. Padding never contributes. A row without any valid frame
pools to the zero vector (mean: 0/0 is defined as 0; max: there is nothing to take the maximum
of, so 0), and its gradient w.r.t. the padded frames is zero.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def check_frames(frames: Tensor, mask: Tensor | None, what: str = "frames") -> Tensor:
    """Validate ``frames (B, T, D)`` / ``mask (B, T)`` and return a bool mask (all True if None)."""
    if frames.dim() != 3:
        raise ValueError(f"{what} must have shape (B, T, D), got {tuple(frames.shape)}")
    if mask is None:
        return torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
    if mask.shape != frames.shape[:2]:
        raise ValueError(
            f"{what} mask must have shape {tuple(frames.shape[:2])} (B, T), got {tuple(mask.shape)}"
        )
    return mask.to(torch.bool)


def masked_mean(frames: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over valid frames. frames (B, T, D), mask (B, T) -> (B, D); empty rows -> 0."""
    m = check_frames(frames, mask).unsqueeze(-1)  # (B, T, 1)
    total = frames.masked_fill(~m, 0.0).sum(dim=1)  # (B, D); padding may hold anything, even NaN
    count = m.sum(dim=1).clamp_min(1).to(frames.dtype)  # (B, 1)
    return total / count


def masked_max(frames: Tensor, mask: Tensor | None = None) -> Tensor:
    """Max over valid frames. frames (B, T, D), mask (B, T) -> (B, D); empty rows -> 0."""
    m = check_frames(frames, mask)
    neg = torch.finfo(frames.dtype).min
    out = frames.masked_fill(~m.unsqueeze(-1), neg).amax(dim=1)  # (B, D)
    return torch.where(m.any(dim=1, keepdim=True), out, torch.zeros_like(out))


class _Pooling(nn.Module):
    """Base: ``in_dim`` and ``out_dim`` attributes, forward(frames (B, T, D), mask (B, T))."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        if int(in_dim) <= 0:
            raise ValueError(f"in_dim must be a positive integer, got {in_dim!r}")
        self.in_dim = int(in_dim)
        self.out_dim = int(in_dim)

    def _check(self, frames: Tensor, mask: Tensor | None) -> Tensor:
        m = check_frames(frames, mask)
        if frames.shape[-1] != self.in_dim:
            raise ValueError(
                f"{type(self).__name__} expects frames with D={self.in_dim}, got D={frames.shape[-1]}"
            )
        return m


class MeanPooling(_Pooling):
    """Masked mean over time (METHODS §4)."""

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        return masked_mean(frames, self._check(frames, mask))


class MaxPooling(_Pooling):
    """Masked max over time (METHODS §4)."""

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        return masked_max(frames, self._check(frames, mask))


class MeanMaxPooling(_Pooling):
    """Sum of masked mean and masked max (Mei et al., "On metric learning for audio-text
    cross-modal retrieval"; METHODS §4). Output dimension = input dimension."""

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        m = self._check(frames, mask)
        return masked_mean(frames, m) + masked_max(frames, m)
