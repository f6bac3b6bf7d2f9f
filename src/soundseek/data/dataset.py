"""(caption, clip) pairs of a split as a ``torch.utils.data`` dataset for training from raw
audio: decoded, resampled, cropped waves (random crop in training, as the papers do; the
start in evaluation) and the caption text; :func:`collate_pairs` pads a batch.

Items are addressed by caption position in the split (what the trainer's batch sampler
yields), and every random draw is a function of (seed, epoch, position), so a resumed run and
any ``num_workers`` see the same crops.
"""
from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from soundseek.audio.io import AudioDecodeError, batch_waves, crop_or_pad, load_audio

log = logging.getLogger(__name__)


class PairDataset(Dataset):
    """Args:
        clips: the split's clips (``clip.audio`` paths).
        captions: caption texts, one per item.
        owners: (n_items,) index into ``clips`` of each caption's clip.
        sample_rate: rate of the waves (the audio tower's).
        read_seconds: audio read per clip (the first seconds of the file).
        crop_seconds: length of the crop fed to the tower (<= read_seconds; 0 = read_seconds).
        train: random crops and augmentation; otherwise the start of the clip, unchanged.
        augment: waveform augmentation ``aug(x, rng)`` (training only), e.g. ``WaveAugment``.
        load_waves: False: items carry no wave (a frozen audio tower served from the cache).
        seed: base seed of the random draws.
    Item: ``{"pos": int, "clip": int, "caption": str, "wave": (n,) float32 | None}``.
    """

    def __init__(self, clips: Sequence, captions: Sequence[str], owners: Sequence[int], sample_rate: int,
                 read_seconds: float, crop_seconds: float = 0.0, train: bool = True, augment=None,
                 load_waves: bool = True, seed: int = 0) -> None:
        if len(captions) != len(owners):
            raise ValueError(f"{len(captions)} captions but {len(owners)} owners")
        self.clips, self.captions, self.owners = list(clips), list(captions), np.asarray(owners, dtype=np.int64)
        self.sample_rate, self.read_seconds = int(sample_rate), float(read_seconds)
        self.crop = int(round((crop_seconds or read_seconds) * sample_rate))
        self.train, self.augment, self.load_waves, self.seed = train, augment, load_waves, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, pos: int) -> dict[str, Any]:
        clip = int(self.owners[pos])
        item = {"pos": int(pos), "clip": clip, "caption": self.captions[pos], "wave": None}
        if not self.load_waves:
            return item
        try:
            x = load_audio(self.clips[clip].audio, self.sample_rate, max_seconds=self.read_seconds)
        except AudioDecodeError as e:
            log.warning("skipping %s: %s", self.clips[clip].audio, e.reason)
            return {**item, "wave": np.zeros(0, np.float32)}
        rng = np.random.default_rng([self.seed, self.epoch, int(pos)])
        if x.shape[-1] > self.crop:
            x, _ = crop_or_pad(x, self.crop, random=self.train, generator=rng)
        if self.train and self.augment is not None:
            x = self.augment(x, rng)
        item["wave"] = np.ascontiguousarray(x, dtype=np.float32)
        return item


def collate_pairs(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Items -> ``{"pos" (B,), "clip" (B,), "captions" [B], "wave" (B, N), "wave_mask" (B, N)}``
    (no wave keys when the items carry none). Clips that failed to decode are dropped."""
    items = [it for it in items if it["wave"] is None or it["wave"].size > 0]
    out: dict[str, Any] = {"pos": torch.tensor([it["pos"] for it in items], dtype=torch.long),
                           "clip": torch.tensor([it["clip"] for it in items], dtype=torch.long),
                           "captions": [it["caption"] for it in items]}
    if items and items[0]["wave"] is not None:
        out["wave"], out["wave_mask"] = batch_waves([it["wave"] for it in items])
    return out


class ListBatchSampler(torch.utils.data.Sampler):
    """Yields precomputed batches of item positions (the trainer's seeded epoch batches)."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = [list(map(int, b)) for b in batches]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)
