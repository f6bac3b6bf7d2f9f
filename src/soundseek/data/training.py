"""The training corpus a recipe names: ``data.path`` (+ ``data.extra``), splits, extra
captions and caption noise applied (METHODS §1-2)."""
from __future__ import annotations

import logging
from pathlib import Path

from soundseek.config import ConfigError
from soundseek.data.types import Corpus

log = logging.getLogger(__name__)

ALL = "all"  # the split view holding every clip (e.g. an evaluation-only corpus)


def synthetic_root(cfg) -> Path:
    """Where the built-in synthetic corpus of ``cfg`` is written (manifest.jsonl inside)."""
    return Path(cfg.data.cache_dir) / f"synthetic-{cfg.data.synthetic_clips}-{cfg.data.synthetic_seed}"


def _load_one(cfg, path: str, fmt: str) -> Corpus:
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


def load_training_corpus(cfg) -> Corpus:
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

