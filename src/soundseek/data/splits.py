"""Deterministic hash-based train/val/test splits for corpora without splits.

A clip's split depends only on ``sha256(f"{seed}:{key}")`` of its key, so it is stable
across runs, machines and Python versions (unlike ``hash``), and adding or removing other
clips never moves it. Fractions are met in expectation, not exactly.

``by="group"`` keys clips by :func:`group_key` -- the parent folder plus the file stem
with trailing digits and separators removed -- so numbered takes of one sound stay in
one split: ``audio/wesnoth/wolf-growl-1.ogg`` and ``audio/wesnoth/wolf-growl-2.ogg``
both have the key ``audio/wesnoth/wolf-growl``; ``bd_808.flac`` -> ``bd``;
``beep 03.wav`` -> ``beep``. Pass a callable for another grouping.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import PurePosixPath
from typing import Callable

from soundseek.data.types import Corpus

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
_TRAILING_NUMBER = re.compile(r"[\s_\-.]*\d+$")


def group_key(clip_id: str) -> str:
    """Parent folder + stem without trailing digits/separators (see the module docstring)."""
    p = PurePosixPath(clip_id.replace("\\", "/"))
    stem = p.stem if p.suffix else p.name
    base = _TRAILING_NUMBER.sub("", stem) or stem
    parent = p.parent.as_posix()
    return base if parent == "." else f"{parent}/{base}"


def hash_unit(key: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) from ``sha256(f"{seed}:{key}")``."""
    h = hashlib.sha256(f"{seed}:{key}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def assign_splits(corpus: Corpus, fractions: dict[str, float] | None = None, seed: int = 0,
                  by: str | Callable[[str], str] = "id", overwrite: bool = False) -> Corpus:
    """Give every clip without a split (all clips if ``overwrite``) a split by hashing its key.

    Args:
        corpus: input corpus (not modified).
        fractions: split name -> fraction, >= 0, summing to 1 (default 0.7/0.15/0.15
            train/val/test); buckets follow the dict order.
        seed: changes the assignment.
        by: ``"id"`` (each clip alone), ``"group"`` (:func:`group_key`) or a callable id -> key.
        overwrite: also reassign clips that already have a split.

    Returns:
        A new corpus with new Clip objects.

    Raises:
        ValueError: bad fractions or an invalid ``by``.
    """
    fractions = dict(DEFAULT_FRACTIONS if fractions is None else fractions)
    if not fractions or any(v < 0 for v in fractions.values()) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    if callable(by):
        key_fn = by
    elif by == "id":
        key_fn = str
    elif by == "group":
        key_fn = group_key
    else:
        raise ValueError(f"Invalid split key {by!r}. Valid: id, group, or a callable")
    names = list(fractions)
    bounds, acc = [], 0.0
    for name in names:
        acc += fractions[name]
        bounds.append(acc)
    clips = []
    for c in corpus.clips:
        if c.split is not None and not overwrite:
            clips.append(replace(c, captions=list(c.captions), tags=list(c.tags), meta=dict(c.meta)))
            continue
        u = hash_unit(key_fn(c.id), seed)
        split = next((n for n, b in zip(names, bounds) if u < b), names[-1])
        clips.append(replace(c, split=split, captions=list(c.captions), tags=list(c.tags), meta=dict(c.meta)))
    return Corpus(corpus.name, clips, list(corpus.problems))
