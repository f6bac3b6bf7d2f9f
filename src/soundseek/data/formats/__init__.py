"""On-disk dataset formats (METHODS.md §1): one reader per format, a registry, auto-detection.

Each reader is ``load_<fmt>(root, splits=None) -> Corpus`` and never raises on a bad row
(it records a :class:`~soundseek.data.types.Problem`); a missing root or an unreadable
top-level file raises.

Example:
    >>> from soundseek.data.formats import load_corpus, FORMATS
    >>> FORMATS.names()
    ['audiocaps', 'clotho', 'esc50', 'folder', 'manifest', 'wavcaps']
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Callable

from soundseek.data.formats.audiocaps import load_audiocaps
from soundseek.data.formats.clotho import load_clotho
from soundseek.data.formats.esc50 import load_esc50
from soundseek.data.formats.folder import load_folder
from soundseek.data.formats.manifest import load_manifest
from soundseek.data.formats.wavcaps import load_wavcaps
from soundseek.data.types import Corpus
from soundseek.registry import Registry

FORMATS: Registry[Callable[..., Corpus]] = Registry("dataset format")
FORMATS.add("clotho", load_clotho)
FORMATS.add("audiocaps", load_audiocaps)
FORMATS.add("wavcaps", load_wavcaps)
FORMATS.add("esc50", load_esc50)
FORMATS.add("manifest", load_manifest)
FORMATS.add("folder", load_folder)


def _csv_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            return [h.strip() for h in next(csv.reader(f), [])]
    except OSError:
        return []


def _is_wavcaps_json(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(4096).decode("utf-8", errors="replace")
        if '"data"' in head:
            return True
        doc = json.loads(path.read_text(encoding="utf-8")) if path.stat().st_size < 1_000_000 else None
        return isinstance(doc, dict) and isinstance(doc.get("data"), list)
    except (OSError, ValueError):
        return False


def detect_format(path: Path | str) -> str:
    """Guess the format of ``path``, first match wins:

    a ``.jsonl`` file -> manifest; a ``.json`` file with ``"data"`` -> wavcaps; another
    file -> folder (a single audio file); a folder holding ``clotho_captions_*.csv`` (also
    under ``clotho_csv_files/``) -> clotho; ``meta/esc50.csv`` -> esc50; a ``train.csv``/
    ``val.csv``/``test.csv`` with an ``audiocap_id`` column -> audiocaps; ``manifest.jsonl``
    -> manifest; ``*.json`` files with ``"data"`` -> wavcaps; otherwise folder.

    Raises:
        FileNotFoundError: ``path`` does not exist.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"Dataset path not found: {p}")
    if p.is_file():
        if p.suffix.lower() == ".jsonl":
            return "manifest"
        if p.suffix.lower() == ".json" and _is_wavcaps_json(p):
            return "wavcaps"
        return "folder"
    if any(p.glob("clotho_captions_*.csv")) or any(p.glob("clotho_csv_files/clotho_captions_*.csv")):
        return "clotho"
    if (p / "meta" / "esc50.csv").is_file():
        return "esc50"
    if any("audiocap_id" in _csv_header(p / f"{s}.csv") for s in ("train", "val", "test")):
        return "audiocaps"
    if (p / "manifest.jsonl").is_file():
        return "manifest"
    if any(_is_wavcaps_json(j) for j in sorted(p.glob("*.json"))):
        return "wavcaps"
    return "folder"


def load_corpus(path: Path | str, format: str = "auto", **kwargs) -> Corpus:
    """Read a dataset with the reader of ``format`` (``"auto"``: :func:`detect_format`).

    Args:
        path: dataset root (folder or file, depending on the format).
        format: ``"auto"`` or one of ``FORMATS.names()``.
        **kwargs: passed to the reader (``splits=...``, WavCaps ``audio_root=...``).

    Raises:
        KeyError: unknown format (the message lists the valid ones).
        FileNotFoundError: ``path`` does not exist.
    """
    if format == "auto":
        format = detect_format(path)
    elif format not in FORMATS:
        raise KeyError(f"Invalid dataset format {format!r}. Valid: auto, {', '.join(FORMATS.names())}")
    return FORMATS.get(format)(path, **kwargs)


__all__ = ["FORMATS", "detect_format", "load_corpus", "load_audiocaps", "load_clotho", "load_esc50",
           "load_folder", "load_manifest", "load_wavcaps"]
