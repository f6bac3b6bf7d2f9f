"""Audio front end: decoding, resampling, cropping, log-mel features, SpecAugment (METHODS.md §2)."""
from __future__ import annotations

from soundseek.audio.augment import SpecAugment
from soundseek.audio.features import LogMel, aisfx_logmel, frame_mask, mel_filterbank, panns_logmel
from soundseek.audio.io import (
    AudioDecodeError,
    AudioInfo,
    audio_info,
    batch_waves,
    crop_or_pad,
    load_audio,
    resample,
    segment,
)

__all__ = [
    "AudioDecodeError",
    "AudioInfo",
    "audio_info",
    "batch_waves",
    "crop_or_pad",
    "load_audio",
    "resample",
    "segment",
    "LogMel",
    "aisfx_logmel",
    "frame_mask",
    "mel_filterbank",
    "panns_logmel",
    "SpecAugment",
]
