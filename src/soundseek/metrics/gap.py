"""Modality gap (METHODS.md section 9; m-LTM section 4).

``gap = || mean_i a_i / |a_i| - mean_j t_j / |t_j| ||_2``: the distance between the
centroids of the L2-normalised audio and text embeddings (Liang et al. 2022). 0 when
both modalities share a centroid, at most 2.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["modality_gap"]


def _normalised_mean(x, name: str) -> torch.Tensor:
    t = x.detach().cpu() if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 2 or t.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (n, d) matrix, got shape {tuple(t.shape)}")
    t = t.double()
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    norms = t.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError(f"{name} has zero vectors, which cannot be normalised")
    return (t / norms).mean(0)  # (d,)


def modality_gap(audio_emb, text_emb) -> float:
    """Norm of the difference of the means of L2-normalised embeddings.

    Args:
        audio_emb: (n_audio, d) audio embeddings (numpy or torch, any scale).
        text_emb: (n_text, d) text embeddings of the same width d.
    """
    a = _normalised_mean(audio_emb, "audio_emb")
    t = _normalised_mean(text_emb, "text_emb")
    if a.shape != t.shape:
        raise ValueError(f"audio_emb and text_emb must have the same width, got {a.shape[0]} and {t.shape[0]}")
    return float((a - t).norm())
