"""Corpus -> cached frozen-encoder features -> split views the trainer and evaluator index into.

Everything the model sees during training and evaluation comes from the on-disk feature
cache (METHODS §3, frozen-encoder mode), so the encoders run once per corpus.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from soundseek.config import ConfigError
from soundseek.data.types import Clip, Corpus
from soundseek.train.config import Config

log = logging.getLogger(__name__)

ALL = "all"  # the split view holding every clip (e.g. an evaluation-only corpus)


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
    audio: object  # encoders.cache.AudioStore
    text: object  # encoders.cache.TextStore
    audio_dim: int
    text_dim: int
    splits: dict[str, SplitView]

    def view(self, name: str) -> SplitView:
        if name not in self.splits:
            raise ConfigError(f"No split {name!r} in corpus {self.corpus.name}. Valid: {', '.join(self.splits)}")
        return self.splits[name]


def synthetic_root(cfg: Config) -> Path:
    """Where the built-in synthetic corpus of ``cfg`` is written (manifest.jsonl inside)."""
    return Path(cfg.data.cache_dir) / f"synthetic-{cfg.data.synthetic_clips}-{cfg.data.synthetic_seed}"


def _load_one(cfg: Config, path: str, fmt: str) -> Corpus:
    from soundseek.data.formats import load_corpus

    if path in ("", "synthetic"):
        from soundseek.data.synthetic import make_synthetic_corpus

        corpus = make_synthetic_corpus(synthetic_root(cfg), n_clips=cfg.data.synthetic_clips, seed=cfg.data.synthetic_seed)
    else:
        corpus = load_corpus(path, fmt)
    if corpus.errors:
        for p in corpus.errors[:20]:
            log.warning("%s", p)
        log.warning("%d problem(s) in %s; affected clips are skipped", len(corpus.errors), corpus.name)
    corpus.clips = [c for c in corpus.clips if c.audio.is_file()]
    if not corpus.clips:
        raise ConfigError(f"Corpus {corpus.name} has no readable clips")
    if not corpus.splits or cfg.data.train_split not in corpus.splits:
        from soundseek.data.splits import assign_splits

        corpus = assign_splits(corpus, seed=cfg.data.split_seed, by=cfg.data.split_by)
    return corpus


def load_training_corpus(cfg: Config) -> Corpus:
    """The corpus named by ``cfg.data`` (plus ``data.extra`` corpora) with splits, extra
    captions and caption noise applied."""
    corpus = _load_one(cfg, cfg.data.path, cfg.data.format)
    if cfg.data.extra:
        parts = [corpus] + [_load_one(cfg, p, "auto") for p in cfg.data.extra]
        clips = []
        for k, part in enumerate(parts):
            for c in part.clips:
                c.id = f"{k}:{c.id}" if k else c.id
                clips.append(c)
        corpus = Corpus("+".join(p.name for p in parts), clips, [q for p in parts for q in p.problems])
    if cfg.data.extra_captions:
        from soundseek.data.augment import add_extra_captions, load_extra_captions

        corpus = add_extra_captions(corpus, load_extra_captions(cfg.data.extra_captions), split=cfg.data.train_split)
    if cfg.data.noise > 0:
        from soundseek.data.augment import shuffle_captions

        corpus = shuffle_captions(corpus, cfg.data.noise, seed=cfg.train.seed, split=cfg.data.train_split)
    return corpus


def build_encoders(cfg: Config):
    from soundseek.encoders import build_audio_encoder, build_text_encoder

    kw = dict(cfg.encoders.audio_options)
    if cfg.encoders.audio_checkpoint:
        kw["path"] = cfg.encoders.audio_checkpoint
    audio = build_audio_encoder(cfg.encoders.audio, **kw)
    tkw: dict = {"pooling": cfg.encoders.text_pooling, "max_length": cfg.encoders.max_tokens}
    if cfg.encoders.text_path:
        tkw["path"] = cfg.encoders.text_path
    text = build_text_encoder(cfg.encoders.text, **tkw)
    return audio.eval(), text.eval()


def prepare(cfg: Config, corpus: Corpus | None = None, progress: bool = True) -> Prepared:
    """Extract (or reuse) cached features of every clip and caption of the corpus."""
    from soundseek.encoders.cache import FeatureCache

    corpus = corpus if corpus is not None else load_training_corpus(cfg)
    audio_enc, text_enc = build_encoders(cfg)
    cache = FeatureCache(Path(cfg.data.cache_dir) / "features", dtype=cfg.encoders.cache_dtype)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.encoders.precision == "bf16"):
        astore = cache.audio_features(
            corpus.clips, audio_enc, batch_size=cfg.encoders.batch_size,
            max_seconds=cfg.data.max_seconds, progress=progress,
        )
        captions, _ = corpus.pairs()
        tstore = cache.text_features(captions, text_enc, batch_size=64, progress=progress)
    failed = set(getattr(astore, "failed", {}) or {})
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
                clip_rows.append(astore.index(clip.id))
                clips.append(clip)
                for k in range(n):
                    cap_rows.append(caption_row + k)
                    owner.append(pos)
                    caps.append(clip.captions[k])
        caption_row += n
    for name, (clip_rows, cap_rows, owner, clips, caps) in per_split.items():
        splits[name] = SplitView(name, np.asarray(clip_rows, dtype=np.int64), np.asarray(cap_rows, dtype=np.int64),
                                 np.asarray(owner, dtype=np.int64), clips, caps)
    return Prepared(corpus, astore, tstore, int(audio_enc.out_dim), int(text_enc.out_dim), splits)
