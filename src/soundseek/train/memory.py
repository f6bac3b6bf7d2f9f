"""In-memory feature stores with the same ``batch`` interface as the on-disk cache; used by
tests, by the distributed equivalence checks and for corpora small enough to hold in RAM."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def _pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(1, max(s.shape[0] for s in seqs))
    out = torch.zeros(len(seqs), t, seqs[0].shape[1])
    mask = torch.zeros(len(seqs), t, dtype=torch.bool)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = torch.as_tensor(np.asarray(s, dtype=np.float32))
        mask[i, : s.shape[0]] = True
    return out, mask


@dataclass
class ArrayAudioStore:
    frames: list[np.ndarray]  # per clip (T_i, D)

    def __len__(self) -> int:
        return len(self.frames)

    def get(self, i: int) -> np.ndarray:
        return self.frames[i]

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        return _pad([self.frames[int(i)] for i in indices])  # (B, T, D), (B, T)


@dataclass
class ArrayTextStore:
    tokens: list[np.ndarray]  # per caption (L_i, D)
    sentence: np.ndarray  # (N, D)

    def __len__(self) -> int:
        return len(self.tokens)

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = [int(i) for i in indices]
        tok, mask = _pad([self.tokens[i] for i in idx])
        return tok, mask, torch.as_tensor(np.asarray(self.sentence[idx], dtype=np.float32))
