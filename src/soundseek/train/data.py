"""Corpus -> split views the trainer and evaluator index into, with the features of every
frozen tower read from the on-disk feature cache.

A tower the recipe trains (or every tower when ``train.cache_frozen`` is false) runs live on
raw audio / text in each step; the features of a frozen tower are encoded once per corpus into
``data.cache_dir/features`` (METHODS §3, frozen-encoder mode) and read back from there. In a
torch.distributed group each process encodes its share of the missing features first.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from soundseek import distributed as dist
from soundseek.config import ConfigError
from soundseek.data.training import ALL, load_training_corpus
from soundseek.data.types import Clip, Corpus
from soundseek.device import autocast, select_device
from soundseek.models.config import Config
from soundseek.models.factory import build_towers

log = logging.getLogger(__name__)

@dataclass
class SplitView:
    """One split: which rows of the feature stores it uses, and who owns each caption."""

    name: str
    clip_rows: np.ndarray  # (n_clips,) rows in the audio store (decoded clips only)
    caption_rows: np.ndarray  # (n_captions,) rows in the text store
    caption_audio: np.ndarray  # (n_captions,) index into clip_rows of each caption's clip
    clips: list[Clip]
    captions: list[str]

    @property
    def n_clips(self) -> int:
        return len(self.clip_rows)

    @property
    def n_captions(self) -> int:
        return len(self.caption_rows)


@dataclass
class Prepared:
    corpus: Corpus
    audio: object  # encoders.cache.AudioStore, or None when the audio tower runs live
    text: object  # encoders.cache.TextStore, or None when the text tower runs live
    audio_dim: int
    text_dim: int
    splits: dict[str, SplitView]
    towers: tuple | None = None  # the (audio, text) encoders that made the features
    max_seconds: float = 10.0  # audio read per clip (live towers)

    def view(self, name: str) -> SplitView:
        if name not in self.splits:
            raise ConfigError(f"No split {name!r} in corpus {self.corpus.name}. Valid: {', '.join(self.splits)}")
        return self.splits[name]


def prepare(cfg: Config, corpus: Corpus | None = None, progress: bool = True, towers: tuple | None = None,
            sharded: bool | None = None) -> Prepared:
    """The corpus of ``cfg`` split into views, with the features of its frozen towers encoded
    into (or read from) the feature cache.

    Args:
        cfg: the recipe (``data``, ``encoders``, ``train.device``, ``train.cache_frozen``).
        corpus: the corpus to use instead of loading ``cfg.data``'s.
        progress: progress bars while encoding.
        towers: the (audio, text) encoders to use (e.g. a loaded model's) instead of building
            ``cfg.encoders``'.
        sharded: each process of the torch.distributed group encodes its share of the missing
            features before all of them read the whole cache (default: when the group has more
            than one process). Rank 0 loads (for the synthetic corpus: writes) the corpus first.
    Returns:
        :class:`Prepared`: feature stores of the cached sides (None for a live tower), split
        views, the towers and the audio length read per clip.
    """
    from soundseek.encoders.cache import FeatureCache

    sharded = dist.world_size() > 1 if sharded is None else sharded
    device = select_device(cfg.train.device)  # an unusable device fails before any work
    if corpus is None:
        corpus = _load_corpus_rank0_first(cfg) if sharded else load_training_corpus(cfg)
    audio_enc, text_enc = towers if towers is not None else build_towers(cfg)
    audio_enc.to(device), text_enc.to(device)
    cache = FeatureCache(Path(cfg.data.cache_dir) / "features", dtype=cfg.encoders.cache_dtype)
    live_audio, live_text = live_sides(cfg)
    astore = tstore = None
    with torch.inference_mode(), autocast(device, cfg.encoders.precision):
        if sharded:
            cache.encode_share([] if live_audio else corpus.clips, [] if live_text else corpus.pairs()[0],
                               audio_enc, text_enc, batch_size=cfg.encoders.batch_size, text_batch_size=64,
                               max_seconds=cfg.data.max_seconds, progress=progress and dist.is_main())
        if not live_audio:
            astore = cache.audio_features(
                corpus.clips, audio_enc, batch_size=cfg.encoders.batch_size,
                max_seconds=cfg.data.max_seconds, progress=progress,
            )
        if not live_text:
            captions, _ = corpus.pairs()
            tstore = cache.text_features(captions, text_enc, batch_size=64, progress=progress)
    failed = set(astore.failed) if astore is not None else unreadable(corpus.clips)
    if failed:
        log.warning("%d clip(s) could not be decoded and are left out: %s", len(failed), ", ".join(sorted(failed)[:10]))
    splits: dict[str, SplitView] = {}
    caption_row = 0
    per_split: dict[str, tuple[list, list, list, list, list]] = {}
    for clip in corpus.clips:
        n = len(clip.captions)
        if clip.id not in failed and clip.split is not None and n:
            for split in (clip.split, ALL):
                clip_rows, cap_rows, owner, clips, caps = per_split.setdefault(split, ([], [], [], [], []))
                pos = len(clip_rows)
                clip_rows.append(astore.index(clip.id) if astore is not None else -1)
                clips.append(clip)
                for k in range(n):
                    cap_rows.append(caption_row + k)
                    owner.append(pos)
                    caps.append(clip.captions[k])
        caption_row += n
    for name, (clip_rows, cap_rows, owner, clips, caps) in per_split.items():
        splits[name] = SplitView(name, np.asarray(clip_rows, dtype=np.int64), np.asarray(cap_rows, dtype=np.int64),
                                 np.asarray(owner, dtype=np.int64), clips, caps)
    return Prepared(corpus, astore, tstore, int(audio_enc.out_dim), int(text_enc.out_dim), splits,
                    towers=(audio_enc, text_enc), max_seconds=cfg.data.max_seconds)


def _load_corpus_rank0_first(cfg: Config) -> Corpus:
    """``load_training_corpus`` on rank 0 first (it may write the synthetic corpus), then on the others."""
    if not dist.is_main():
        dist.barrier()
    corpus = load_training_corpus(cfg)
    if dist.is_main():
        dist.barrier()
    return corpus


def live_sides(cfg: Config) -> tuple[bool, bool]:
    """(audio, text): whether each tower runs on raw input in training/evaluation: always when
    the recipe trains it, and for frozen towers when ``train.cache_frozen`` is false."""
    enc = cfg.encoders
    audio = not enc.lock_audio or enc.audio_unlocked_blocks > 0 or not cfg.train.cache_frozen
    text = not enc.lock_text or enc.text_unlocked_blocks > 0 or not cfg.train.cache_frozen
    return audio, text


def unreadable(clips) -> set[str]:
    """Ids of clips whose file header cannot be read (left out of live-audio training)."""
    from soundseek.audio.io import AudioDecodeError, audio_info

    bad = set()
    for c in clips:
        try:
            audio_info(c.audio)
        except AudioDecodeError:
            bad.add(c.id)
    return bad
