"""In-memory feature stores with the same ``batch`` interface as the on-disk cache; used by
tests, by the distributed equivalence checks and for corpora small enough to hold in RAM."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from soundseek.padding import pad_sequences


def _dtype(a: np.ndarray) -> torch.dtype:
    return torch.float64 if np.asarray(a).dtype == np.float64 else torch.float32


def _pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded batch in the arrays' precision (float64 arrays stay float64, others float32)."""
    return pad_sequences(seqs, dtype=_dtype(seqs[0]))


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
        return tok, mask, torch.as_tensor(self.sentence[idx]).to(_dtype(self.sentence))
