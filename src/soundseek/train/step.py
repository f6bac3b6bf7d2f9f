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
        text, audio = self.encode(batch)
        return self.model(text, audio, batch["clip_ids"], batch.get("teacher"))

    def encode(self, batch: dict[str, Any]) -> tuple[dict, dict]:
        """The batch's caption and clip representations (the scorer's dicts)."""
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
        return text, audio


def concat_reps(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Representations of consecutive micro-batches as one batch: tensors are concatenated along
    dim 0, after zero-padding (False for masks) the other dims to the largest micro-batch's,
    which is what encoding the whole batch at once gives a masked scorer."""
    out = {}
    for k in parts[0]:
        ts = [p[k] for p in parts]
        shape = [max(t.shape[d] for t in ts) for d in range(1, ts[0].dim())]
        padded = []
        for t in ts:
            pad = [x for d in reversed(range(1, t.dim())) for x in (0, shape[d - 1] - t.shape[d])]
            padded.append(torch.nn.functional.pad(t, pad) if any(pad) else t)
        out[k] = torch.cat(padded)
    return out


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
