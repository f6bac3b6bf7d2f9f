"""Learned attention pooling over time (METHODS §4): a clip vector that weights frames by a
small scoring network instead of treating them equally (mean) or picking one (max).

``a_t = softmax_t(w^T tanh(V x_t))`` over the valid frames, ``out = sum_t a_t x_t`` (Ilse et al.
2018, "Attention-based deep multiple instance learning"; the attention pooling of Kong et al.'s
AudioSet models). With ``heads = h`` there are h independent weightings whose outputs are averaged,
so the output dimension stays D. Padding gets zero weight; a row without valid frames pools to 0.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .basic import _Pooling, masked_mean


class AttentionPooling(_Pooling):
    """Masked softmax attention over frames.

    Args:
        in_dim: D of the frames (= output dimension).
        attn_dim: hidden size of the scoring network ``w^T tanh(V x)``.
        heads: independent attention weightings, averaged.
        residual_mean: add the masked mean of the frames to the output, so an untrained
            scorer starts from (twice) mean pooling and attention only has to learn the rest.

    Shapes: frames (B, T, D), mask (B, T) bool (True = valid) -> (B, D).
    """

    def __init__(self, in_dim: int, attn_dim: int = 128, heads: int = 1, residual_mean: bool = False) -> None:
        super().__init__(in_dim)
        if int(attn_dim) <= 0 or int(heads) <= 0:
            raise ValueError(f"attn_dim and heads must be positive integers, got {attn_dim!r}, {heads!r}")
        self.proj = nn.Linear(self.in_dim, int(attn_dim))
        self.score = nn.Linear(int(attn_dim), int(heads), bias=False)
        self.residual_mean = bool(residual_mean)

    def weights(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """(B, T, heads) attention weights; each head sums to 1 over a row's valid frames."""
        m = self._check(frames, mask)
        return self._weights(frames.masked_fill(~m.unsqueeze(-1), 0.0), m)

    def _weights(self, x: Tensor, m: Tensor) -> Tensor:
        logits = self.score(torch.tanh(self.proj(x)))  # (B, T, h)
        w = torch.softmax(logits.masked_fill(~m.unsqueeze(-1), float("-inf")), dim=1)
        return torch.nan_to_num(w, nan=0.0)  # all-masked rows: 0/0 -> 0

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        m = self._check(frames, mask)
        x = frames.masked_fill(~m.unsqueeze(-1), 0.0)  # padding may hold anything, even NaN
        w = self._weights(x, m)  # (B, T, h)
        out = torch.einsum("bth,btd->bd", w, x) / w.shape[-1]  # (B, D)
        if self.residual_mean:
            out = out + masked_mean(x, m)
        return out
