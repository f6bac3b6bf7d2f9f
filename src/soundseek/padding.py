"""Padding of variable-length sequences into a batch with a prefix mask (valid first)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch


def pad_sequences(seqs: Sequence[np.ndarray | torch.Tensor], dtype: torch.dtype = torch.float32,
                  min_length: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_i, D) arrays or tensors -> (B, Tmax, D) ``dtype`` zero-padded, (B, Tmax) bool mask.

    ``Tmax`` is at least ``min_length`` (a batch of empty sequences keeps one masked frame).

    Example:
        >>> x, m = pad_sequences([np.ones((2, 3)), np.ones((1, 3))])
        >>> tuple(x.shape), m.tolist()
        ((2, 2, 3), [[True, True], [True, False]])
    """
    if not len(seqs):
        raise ValueError("pad_sequences needs at least one sequence")
    dim = seqs[0].shape[1:]
    tmax = max(min_length, max(int(s.shape[0]) for s in seqs))
    out = torch.zeros(len(seqs), tmax, *dim, dtype=dtype)
    mask = torch.zeros(len(seqs), tmax, dtype=torch.bool)
    np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
    for i, s in enumerate(seqs):
        t = s.to(dtype) if torch.is_tensor(s) else torch.from_numpy(np.array(s, dtype=np_dtype))  # copies memmaps
        out[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return out, mask
