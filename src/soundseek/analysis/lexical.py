"""Lexical richness of caption sets (METHODS.md section 9; thesis section 4.4).

Measures:

- :func:`tokenize` -- the tokenisation of LexicalRichness (Shen 2022, the package the
  thesis used): lower-case, drop digits, delete hyphens/dashes ("bird-song" ->
  "birdsong"), turn every other ASCII punctuation mark into a space, split on
  whitespace.
- :func:`ttr` -- type-token ratio, ``#types / #tokens``.
- :func:`vocabulary_size` -- number of distinct tokens.
- :func:`mtld` -- Measure of Textual Lexical Diversity (McCarthy & Jarvis 2010):
  walk the tokens keeping a running TTR; whenever it falls to ``threshold`` (0.72) or
  below, count one factor and restart. A trailing segment with TTR ``t`` adds the
  partial factor ``(1 - t) / (1 - threshold)``. The pass's score is
  ``#tokens / #factors``; MTLD is the mean of the forward and the backward pass.
  If a pass counts zero factors (every token distinct, so the original definition
  divides by zero) its score is ``#tokens`` -- LexicalRichness' convention.

Per-caption measures (caption length, TTR, MTLD) are what the thesis plots as KDE and
violin plots (:func:`soundseek.analysis.plots.compare_plots`).
"""
from __future__ import annotations

import csv
import json
import re
import string
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "caption_measures",
    "lexical_report",
    "mtld",
    "read_captions",
    "tokenize",
    "ttr",
    "vocabulary_size",
]

_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")
_DASHES = re.compile("[-\u2013\u2014]")
_DIGITS = re.compile("[0-9]+")


def tokenize(caption: str) -> list[str]:
    """Lower-cased word tokens of a caption (LexicalRichness rules, see module doc)."""
    text = _DIGITS.sub("", caption.lower())
    text = _DASHES.sub("", text)
    return _PUNCT.sub(" ", text).split()


def _tokens(x: str | Sequence[str]) -> list[str]:
    return tokenize(x) if isinstance(x, str) else list(x)


def ttr(tokens: str | Sequence[str]) -> float:
    """Type-token ratio of a token list (or of a caption string, tokenised)."""
    toks = _tokens(tokens)
    if not toks:
        raise ValueError("ttr of an empty token list is undefined")
    return len(set(toks)) / len(toks)


def vocabulary_size(texts: Iterable[str] | str) -> int:
    """Number of distinct tokens in a caption or in an iterable of captions (or of tokens)."""
    if isinstance(texts, str):
        texts = [texts]
    return len({t for s in texts for t in tokenize(s)})


def _mtld_pass(tokens: Sequence[str], threshold: float) -> float:
    types: set[str] = set()
    count, factors, ratio = 0, 0.0, 1.0
    for tok in tokens:
        count += 1
        types.add(tok)
        ratio = len(types) / count
        if ratio <= threshold:
            factors += 1.0
            types, count = set(), 0
    if count > 0:
        factors += (1.0 - ratio) / (1.0 - threshold)
    if factors == 0.0:
        return float(len(tokens))
    return len(tokens) / factors


def mtld(tokens: str | Sequence[str], threshold: float = 0.72) -> float:
    """Bidirectional MTLD of a token list (or caption string); see the module doc.

    Example:
        >>> round(mtld(["a", "a", "b", "c"]), 6)  # (forward 4 / 1 + backward 4 / (0.25 / 0.28)) / 2
        4.24
    """
    toks = _tokens(tokens)
    if not toks:
        raise ValueError("MTLD of an empty token list is undefined")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    return (_mtld_pass(toks, threshold) + _mtld_pass(toks[::-1], threshold)) / 2.0


def caption_measures(captions: Sequence[str], threshold: float = 0.72) -> dict[str, np.ndarray]:
    """Per-caption ``length`` (tokens), ``ttr`` and ``mtld`` arrays (empty captions skipped)."""
    toks = [t for t in (tokenize(c) for c in captions) if t]
    return {
        "length": np.array([len(t) for t in toks], dtype=np.float64),
        "ttr": np.array([ttr(t) for t in toks], dtype=np.float64),
        "mtld": np.array([mtld(t, threshold) for t in toks], dtype=np.float64),
    }


def lexical_report(captions: Sequence[str], threshold: float = 0.72) -> dict:
    """Corpus- and caption-level lexical richness of a caption set.

    Returns:
        ``n_captions``, ``n_empty``, ``n_tokens``, ``vocabulary_size``, ``ttr`` and ``mtld``
        of the concatenated token stream (captions in the given order), and the mean /
        median / std of the per-caption ``length``, ``ttr`` and ``mtld``.
    """
    captions = list(captions)
    stream = [t for c in captions for t in tokenize(c)]
    if not stream:
        raise ValueError("no tokens in the caption set")
    per = caption_measures(captions, threshold)
    out: dict = {
        "n_captions": len(captions),
        "n_empty": len(captions) - len(per["length"]),
        "n_tokens": len(stream),
        "vocabulary_size": len(set(stream)),
        "ttr": len(set(stream)) / len(stream),
        "mtld": mtld(stream, threshold),
    }
    for name, values in per.items():
        out[f"caption_{name}"] = {
            "mean": float(values.mean()),
            "median": float(np.median(values)),
            "std": float(values.std()),
        }
    return out


def read_captions(path: str | Path) -> list[str]:
    """Captions from a .txt (one per line), .csv (Clotho ``caption_1..5`` columns or a
    ``caption`` column), .jsonl manifest (``captions`` list or ``caption``) or WavCaps
    .json (``{"data": [{"caption": ...}]}``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            cols = reader.fieldnames or []
            numbered = sorted((c for c in cols if re.fullmatch(r"caption_\d+", c)), key=lambda c: int(c[8:]))
            use = numbered or (["caption"] if "caption" in cols else [])
            if not use:
                raise ValueError(f"{path}: no caption column; expected caption_1..caption_5 or caption, got {cols}")
            return [row[c].strip() for row in reader for c in use if row.get(c) and row[c].strip()]
    if suffix in (".jsonl", ".json"):
        text = path.read_text(encoding="utf-8")
        if suffix == ".json":
            records = json.loads(text).get("data", [])
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        out: list[str] = []
        for rec in records:
            caps = rec.get("captions", rec.get("caption", []))
            out.extend([caps] if isinstance(caps, str) else list(caps))
        return [c.strip() for c in out if c and c.strip()]
    raise ValueError(f"Unsupported caption file {path.name!r}. Valid suffixes: .csv, .json, .jsonl, .txt")
