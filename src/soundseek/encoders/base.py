"""The audio-encoder interface shared by PANNs, aisfx and the small CNN (METHODS §3).

An audio encoder is an ``nn.Module`` with

* ``sample_rate: int`` — the rate its input waves must have,
* ``out_dim: int`` — the width D of its frame features,
* ``config() -> dict`` — JSON-able description of weights + options (feature-cache key),
* ``forward(wave (B, N), wave_mask (B, N) bool | None) -> (frames (B, T, D), frame_mask (B, T))``.

Masks are prefix masks (valid samples first, padding last), as produced by
``soundseek.audio.io.batch_waves``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class AudioEncoder(nn.Module):
    """Base class: subclasses set ``sample_rate``/``out_dim`` and implement ``forward``."""

    sample_rate: int = 0
    out_dim: int = 0

    def config(self) -> dict:
        """Identifies the encoder for cache keys; subclasses add their options/weights."""
        return {"class": type(self).__name__, "sample_rate": self.sample_rate, "out_dim": self.out_dim}


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file (identifies the weights in ``config()``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_digest(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, values) — for in-memory weights."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def sample_to_frame_mask(wave_mask: torch.Tensor | None, n_samples: int, n_frames: int,
                         hop_length: int, batch: int, device: torch.device | None = None) -> torch.Tensor:
    """Frame mask of a centred STFT from a prefix sample mask.

    Frame t is centred on sample ``t * hop``; it is valid when that sample is valid, so a wave
    with n valid samples has ``ceil(n / hop)`` valid frames (0 for n = 0).

    Args:
        wave_mask: (B, N) bool or None (all valid).
    Returns:
        (B, n_frames) bool.
    """
    if wave_mask is None:
        n = torch.full((batch,), n_samples, dtype=torch.long, device=device)
    else:
        n = wave_mask.to(torch.long).sum(dim=1)
    valid = (n + hop_length - 1) // hop_length  # (B,)
    return torch.arange(n_frames, device=n.device)[None, :] < valid[:, None]


def pool_mask(mask: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Follow a frame mask through successive floor-mode time poolings.

    A pooled frame is valid if any of the frames it covers is valid (max pooling of the mask),
    and the output length is floor(T / f) per stage, exactly like ``avg_pool2d``/``max_pool2d``.

    Args:
        mask: (B, T) bool.
        factors: pooling factors along time, in order (1 = no pooling).
    Returns:
        (B, T') bool.
    """
    m = mask.to(torch.float32)[:, None, :]  # (B, 1, T)
    for f in factors:
        if f > 1:
            m = F.max_pool1d(m, kernel_size=f, stride=f)
    return m[:, 0, :] > 0


def masked_mean_max(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PANNs clip pooling ``max_t + mean_t`` restricted to valid frames.

    Args:
        frames: (B, T, D); mask: (B, T) bool.
    Returns:
        (B, D); rows without a valid frame give zeros.
    """
    m = mask[..., None].to(frames.dtype)  # (B, T, 1)
    cnt = m.sum(dim=1).clamp_min(1.0)  # (B, 1)
    mean = (frames * m).sum(dim=1) / cnt
    mx = frames.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    return mean + mx
