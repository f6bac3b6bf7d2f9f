"""The module a training step runs (and ``DistributedDataParallel`` wraps): a batch in, the
model's loss out. A batch is a dict with ``clip_ids`` (B,) and, per side, either the tower's
input (live towers) or its cached output (frozen towers replaced by the feature cache):

* audio: ``wave`` (B, N) + ``wave_mask`` (B, N), or ``frames`` (B, T, Da) + ``frame_mask`` (B, T);
* text: ``captions`` (list of B strings), or ``tokens`` (B, L, Dt) + ``token_mask`` + ``sentence``.
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from soundseek.models import RetrievalModel


class BatchLoss(nn.Module):
    """``forward(batch) -> loss`` of :class:`RetrievalModel` ``model``; ``frame_hook``
    (e.g. SpecAugment of cached frames) is applied to cached audio frames in training."""

    def __init__(self, model: RetrievalModel, frame_hook: Callable | None = None) -> None:
        super().__init__()
        self.model = model
        self.frame_hook = frame_hook

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        m = self.model
        if "captions" in batch:
            text = m.encode_captions(batch["captions"])
        else:
            text = m.encode_text(batch["tokens"], batch["token_mask"], batch["sentence"])
        if "wave" in batch:
            audio = m.encode_waves(batch["wave"], batch["wave_mask"])
        else:
            frames, fmask = batch["frames"], batch["frame_mask"]
            if self.frame_hook is not None and m.training:
                frames = self.frame_hook(frames, fmask)
            audio = m.encode_audio(frames, fmask)
        return m(text, audio, batch["clip_ids"], batch.get("teacher"))


def to_device(batch: dict[str, Any], device: torch.device, dtype: torch.dtype | None = None,
              non_blocking: bool = False) -> dict[str, Any]:
    """Tensors of ``batch`` moved to ``device``, floating ones cast to ``dtype`` (the model's)."""
    def move(v):
        if not torch.is_tensor(v):
            return v
        if dtype is not None and v.is_floating_point():
            return v.to(device, dtype, non_blocking=non_blocking)
        return v.to(device, non_blocking=non_blocking)

    return {k: move(v) for k, v in batch.items()}
