"""Caption augmentation and the noisy-correspondence protocol (METHODS.md §7).

* :func:`load_extra_captions` / :func:`add_extra_captions`: extra (e.g. LLM-written)
  captions from a JSON or CSV side file, mixed into the *training* split only (adding
  them to val/test would leak).
* :func:`shuffle_captions`: move a seeded fraction ``p`` of the training captions to other
  clips, so exactly ``round(p * n_captions)`` captions describe a clip they do not belong to.

Both return a new :class:`Corpus`; the input is not modified.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from soundseek.data.types import Clip, Corpus, Problem

ID_COLUMNS = ("clip_id", "file_name")


def load_extra_captions(path: Path | str) -> dict[str, list[str]]:
    """Read a side file of extra captions.

    Formats:
        JSON: ``{"clip_id": ["caption", ...], ...}`` (a single string is accepted too).
        CSV: an id column ``clip_id`` or ``file_name`` and either ``caption`` (one row per
        caption; ids may repeat) or ``caption_1``, ``caption_2``, ... Empty cells are skipped.

    Raises:
        FileNotFoundError: no such file. ValueError: unknown extension, bad JSON shape or
        missing CSV columns (the message names the expected ones).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Extra captions file not found: {path}")
    out: dict[str, list[str]] = {}
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(doc, dict):
            raise ValueError(f'{path}: expected a JSON object {{"clip_id": ["caption", ...]}}')
        for k, v in doc.items():
            caps = [v] if isinstance(v, str) else v
            if not isinstance(caps, list) or not all(isinstance(c, str) for c in caps):
                raise ValueError(f"{path}: captions of {k!r} must be a string or a list of strings, got {v!r}")
            out.setdefault(str(k), []).extend(" ".join(c.split()) for c in caps if c.strip())
        return out
    if suffix != ".csv":
        raise ValueError(f"Invalid extra captions file {path.name!r}: extension must be one of .json, .csv")
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        id_col = next((c for c in ID_COLUMNS if c in header), None)
        cap_cols = ["caption"] if "caption" in header else sorted(
            (h for h in header if re.fullmatch(r"caption_\d+", h)), key=lambda h: int(h.split("_")[1]))
        if id_col is None or not cap_cols:
            raise ValueError(f"{path}: wrong columns {header}; expected an id column ({' or '.join(ID_COLUMNS)}) "
                             "and caption or caption_1..caption_n")
        for row in reader:
            cid = (row.get(id_col) or "").strip()
            if cid:
                out.setdefault(cid, []).extend(" ".join(row[c].split()) for c in cap_cols if (row.get(c) or "").strip())
    return out


def _copy(c: Clip) -> Clip:
    return replace(c, captions=list(c.captions), tags=list(c.tags), meta=dict(c.meta))


def add_extra_captions(corpus: Corpus, extra: dict[str, list[str]], split: str | None = "train") -> Corpus:
    """Append extra captions to the clips of ``split`` (None: every clip).

    Captions already on the clip are not added twice. Ids not in the corpus and ids of
    clips in another split are reported as warnings. ``clip.meta["n_extra_captions"]`` counts
    the added captions (they are the last ones of ``clip.captions``).
    """
    clips = [_copy(c) for c in corpus.clips]
    by_id = {c.id: c for c in clips}
    problems = list(corpus.problems)
    for cid, caps in extra.items():
        c = by_id.get(cid)
        if c is None:
            problems.append(Problem("warning", "extra captions", f"unknown clip id {cid!r}; its captions are ignored"))
            continue
        if split is not None and c.split != split:
            problems.append(Problem("warning", "extra captions", f"clip {cid!r} is in split {c.split!r}, not "
                                    f"{split!r}; its extra captions are ignored"))
            continue
        new = [t for t in dict.fromkeys(caps) if t not in c.captions]
        c.captions += new
        c.meta["n_extra_captions"] = c.meta.get("n_extra_captions", 0) + len(new)
    return Corpus(corpus.name, clips, problems)


def shuffle_captions(corpus: Corpus, p: float, seed: int = 0, split: str | None = "train") -> Corpus:
    """Noisy-correspondence protocol: reassign ``round(p * n)`` of the ``n`` captions of ``split``.

    The moved captions are chosen uniformly (seeded) and permuted among their own slots so
    that each lands on a different clip; clips keep their number of captions. (With a
    single moved caption no permutation exists: it goes to another random clip instead.)
    Each clip of ``split`` gets ``meta["caption_moved"]`` (bool per caption) and
    ``meta["caption_source"]`` (the id of the clip each caption was written for).

    Raises:
        ValueError: ``p`` outside [0, 1], or fewer than two clips with captions in ``split``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    clips = [_copy(c) for c in corpus.clips]
    idx = [i for i, c in enumerate(clips) if split is None or c.split == split]
    slots = [(i, j) for i in idx for j in range(len(clips[i].captions))]  # (clip index, caption index)
    k = int(round(p * len(slots)))
    for i in idx:
        clips[i].meta["caption_moved"] = [False] * len(clips[i].captions)
        clips[i].meta["caption_source"] = [clips[i].id] * len(clips[i].captions)
    name = f"{corpus.name}+shuffle{p:g}"
    if k == 0:
        return Corpus(name, clips, list(corpus.problems))
    owners = np.array([s[0] for s in slots])
    if len(set(owners.tolist())) < 2:
        raise ValueError(f"shuffle_captions needs captions on at least two clips of split {split!r}")
    rng = np.random.default_rng(seed)
    sel = _feasible_selection(owners, k, rng)
    orig = {s: clips[s[0]].captions[s[1]] for s in slots}
    if k == 1:
        (ci, cj), = [slots[sel[0]]]
        target = int(rng.choice([i for i in idx if i != ci]))
        text = clips[ci].captions.pop(cj)
        for key in ("caption_moved", "caption_source"):
            clips[ci].meta[key].pop(cj)
        clips[target].captions.append(text)
        clips[target].meta["caption_moved"].append(True)
        clips[target].meta["caption_source"].append(clips[ci].id)
        return Corpus(name, clips, list(corpus.problems))
    perm = _derangement(owners[sel], rng)  # slot sel[a] receives the caption of slot sel[perm[a]]
    for a, b in enumerate(perm):
        (ci, cj), (si, sj) = slots[sel[a]], slots[sel[b]]
        clips[ci].captions[cj] = orig[(si, sj)]
        clips[ci].meta["caption_moved"][cj] = True
        clips[ci].meta["caption_source"][cj] = clips[si].id
    return Corpus(name, clips, list(corpus.problems))


def _feasible_selection(owners: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct slot indices, uniform, redrawn until no clip owns more than half of them."""
    n = len(owners)
    for _ in range(100):
        sel = np.sort(rng.choice(n, size=k, replace=False))
        if k == 1 or np.bincount(owners[sel]).max() * 2 <= k:
            return sel
    # dominated corpus: take slots round-robin over clips (in a random order) so no clip exceeds half
    order = rng.permutation(n)
    by_owner: dict[int, list[int]] = {}
    for s in order:
        by_owner.setdefault(int(owners[s]), []).append(int(s))
    queues = sorted(by_owner.values(), key=len, reverse=True)
    picked: list[int] = []
    while len(picked) < k:
        for q in queues:
            if q and len(picked) < k:
                picked.append(q.pop())
    sel = np.sort(np.array(picked))
    if np.bincount(owners[sel]).max() * 2 > k:
        raise ValueError(f"cannot move {k} captions to other clips: one clip holds most of the captions")
    return sel


def _derangement(own: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A permutation ``perm`` with ``own[perm[a]] != own[a]`` for all a (no clip owns more than half)."""
    k = len(own)
    perm = rng.permutation(k)
    for _ in range(20 * k + 100):  # repair conflicts by random swaps
        bad = np.flatnonzero(own[perm] == own)
        if len(bad) == 0:
            return perm
        a = int(bad[0])
        b = int(rng.integers(k))
        if own[perm[b]] != own[a] and own[perm[a]] != own[b]:
            perm[a], perm[b] = perm[b], perm[a]
    # fallback: group slots by clip, shift by the largest group (valid when no group exceeds k/2)
    order = np.argsort(own, kind="stable")
    m = int(np.bincount(own).max())
    perm = np.empty(k, dtype=int)
    perm[order] = order[(np.arange(k) + m) % k]
    return perm
