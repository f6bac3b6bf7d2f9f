"""NetRVLAD pooling (residual-less NetVLAD; Miech et al. 2017 "Learnable pooling with context
gating", as used for audio retrieval by Lou et al. 2022 and Mei et al. 2022; METHODS §4).

    a_{t,k} = softmax_k(w_k . x_t + b_k)            soft assignment of frame t to cluster k
    v_k     = sum_t mask_t a_{t,k} x_t                (no "- c_k" residual: the R in RVLAD)
    v       = l2norm(flatten_k(l2norm(v_k)))          intra- then global normalisation, (K*D,)
    out     = Linear(K*D -> out_dim)(v)              optional

Padding frames get assignment 0, so they never contribute; a row without valid frames gives
v = 0 (then ``out = bias`` if the output layer is used).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .basic import _Pooling


class NetRVLAD(_Pooling):
    """Soft-assignment residual-less VLAD over masked frames.

    Args:
        in_dim: D, frame dimension.
        n_clusters: K.
        out_dim: if given, a linear layer maps the (K*D) descriptor to ``out_dim``;
            otherwise the output is the normalised (K*D) descriptor.
        eps: stabiliser of the L2 normalisations.

    Shapes: forward(frames (B, T, D), mask (B, T) bool | None) -> (B, out_dim or K*D).
    """

    def __init__(self, in_dim: int, n_clusters: int = 8, out_dim: int | None = None, eps: float = 1e-12) -> None:
        super().__init__(in_dim)
        if int(n_clusters) <= 0:
            raise ValueError(f"n_clusters must be a positive integer, got {n_clusters!r}")
        self.n_clusters = int(n_clusters)
        self.eps = float(eps)
        self.assign = nn.Linear(self.in_dim, self.n_clusters)  # cluster logits
        self.proj = nn.Linear(self.n_clusters * self.in_dim, int(out_dim)) if out_dim else None
        self.out_dim = int(out_dim) if out_dim else self.n_clusters * self.in_dim

    def descriptor(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        """The normalised (B, K*D) RVLAD descriptor before the optional output layer."""
        m = self._check(frames, mask).unsqueeze(-1)  # (B, T, 1)
        frames = frames.masked_fill(~m, 0.0)  # padding may hold anything, even NaN
        a = torch.softmax(self.assign(frames), dim=-1).masked_fill(~m, 0.0)  # (B, T, K), padding -> 0
        v = torch.einsum("btk,btd->bkd", a, frames)  # (B, K, D)
        v = F.normalize(v, dim=-1, eps=self.eps)  # intra-normalisation
        return F.normalize(v.flatten(1), dim=-1, eps=self.eps)  # (B, K*D)

    def forward(self, frames: Tensor, mask: Tensor | None = None) -> Tensor:
        v = self.descriptor(frames, mask)
        return self.proj(v) if self.proj is not None else v
