"""DCASE language-based audio retrieval submission files (text-to-audio, top 10).

The task's baseline system writes its retrieval output as a CSV with a header row
``caption,file_name_1,...,file_name_10`` and one row per query caption: the caption text,
then the file names of the ten best-scoring clips, best first (``test.output.csv`` of the
DCASE 2022 task 6b baseline, github.com/xieh97/dcase2022-audio-retrieval; its
``eval_script.py`` reads the file back by caption, column 0, and ranks by columns 1-10).
Fields are quoted where the CSV dialect needs it (captions with commas, quotes or line
breaks), exactly as Python's :mod:`csv` and pandas write them.

Ranks are the same as the metrics' (METHODS §9): descending score, ties broken by the
lower clip index (a stable sort).
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from soundseek.fileio import atomic_write_text

__all__ = ["TOP_K", "submission_header", "top_k", "submission_rows", "submission_csv", "write_submission"]

TOP_K = 10
"""Clips listed per caption in a DCASE retrieval submission."""


def submission_header(k: int = TOP_K) -> list[str]:
    """``["caption", "file_name_1", ..., "file_name_k"]``."""
    return ["caption", *(f"file_name_{i}" for i in range(1, k + 1))]


def _as_matrix(scores) -> np.ndarray:
    s = np.asarray(scores.detach().cpu().numpy() if hasattr(scores, "detach") else scores, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"scores must be an (n_captions, n_clips) matrix, got shape {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (a NaN or inf has no rank)")
    return s


def top_k(scores, k: int = TOP_K) -> np.ndarray:
    """(n_captions, k) clip indices of each row's k highest scores, best first; ties keep the
    lower index first. ``scores`` is an (n_captions, n_clips) matrix of finite numbers."""
    s = _as_matrix(scores)
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if s.shape[1] < k:
        raise ValueError(f"a submission lists {k} clips per caption, but there are only {s.shape[1]} clips")
    return np.argsort(-s, axis=1, kind="stable")[:, :k]


def submission_rows(captions: Sequence[str], names: Sequence[str], scores, k: int = TOP_K) -> list[list[str]]:
    """One row per caption: the caption, then the names of its k best clips."""
    names = list(names)
    s = _as_matrix(scores)
    if s.shape[0] != len(captions):
        raise ValueError(f"{len(captions)} captions but the score matrix has {s.shape[0]} rows")
    if s.shape[1] != len(names):
        raise ValueError(f"{len(names)} clip names but the score matrix has {s.shape[1]} columns")
    idx = top_k(s, k)
    for n in names:
        if not n or "\n" in n or "\r" in n:
            raise ValueError(f"clip name {n!r} cannot be written as one CSV field of a file name")
    return [[str(c), *(names[j] for j in row)] for c, row in zip(captions, idx)]


def submission_csv(captions: Sequence[str], names: Sequence[str], scores, k: int = TOP_K) -> str:
    """The submission file's text (header + rows, ``\\n`` line ends, minimal quoting)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(submission_header(k))
    w.writerows(submission_rows(captions, names, scores, k))
    return buf.getvalue()


def write_submission(path: str | Path, captions: Sequence[str], names: Sequence[str], scores, k: int = TOP_K) -> int:
    """Write the submission CSV to ``path`` atomically (UTF-8); returns the number of rows."""
    text = submission_csv(captions, names, scores, k)
    atomic_write_text(path, text)
    return len(captions)
