"""Helpers shared by the format readers (not public API).

:class:`CorpusBuilder` collects clips and problems with the checks every reader needs
(duplicate ids, missing audio, empty captions), so each reader only parses its format.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Sequence

from soundseek.data.types import Clip, Corpus, Problem, Severity
from soundseek.fileio import AUDIO_EXTENSION_NAMES  # tried in order for ids without extension


def is_audio_file(path: Path | str) -> bool:
    name = os.path.basename(str(path))
    return not name.startswith(".") and name.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSION_NAMES and "." in name


def check_root(root: Path | str, what: str) -> Path:
    """The root as an absolute path; a clear FileNotFoundError when it does not exist."""
    p = Path(root).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} root not found: {p}")
    return p.resolve()


def check_splits(splits: Sequence[str] | str | None, valid: Sequence[str], aliases: dict[str, str] | None = None,
                 fmt: str = "") -> list[str]:
    """Validate requested split names (after mapping ``aliases``); returns canonical names in ``valid`` order."""
    if splits is None:
        return list(valid)
    if isinstance(splits, str):
        splits = [splits]
    aliases = aliases or {}
    out = []
    for s in splits:
        c = aliases.get(s, s)
        if c not in valid:
            names = ", ".join(list(valid) + [a for a in aliases if a not in valid])
            raise ValueError(f"Invalid {fmt} split {s!r}. Valid: {names}")
        out.append(c)
    return [v for v in valid if v in out]


def read_csv(path: Path, builder: "CorpusBuilder", required: Sequence[str]) -> list[tuple[int, dict[str, str]]] | None:
    """Rows of a CSV as ``(line number, row)``; None (and an error problem) when columns are missing.

    Raises:
        OSError: the file cannot be opened (a top-level file: readers let it propagate).
    """
    text = _read_text(path)
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        builder.error(str(path), f"wrong columns: missing {', '.join(missing)}; expected columns "
                      f"{', '.join(required)}; found {', '.join(header) or '(none)'}")
        return None
    return [(i + 2, {k: (v or "") for k, v in row.items() if k is not None}) for i, row in enumerate(reader)]


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:  # some published CSVs (Clotho metadata) are Latin-1
        return data.decode("latin-1")


class DirIndex:
    """Lazy ``stem -> file`` maps of audio files per directory (one listing per directory)."""

    def __init__(self) -> None:
        self._maps: dict[Path, dict[str, Path]] = {}

    def _map(self, d: Path) -> dict[str, Path]:
        if d not in self._maps:
            m: dict[str, Path] = {}
            rank = {e: i for i, e in enumerate(AUDIO_EXTENSION_NAMES)}
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except OSError:
                entries = []
            for e in entries:
                if e.is_file() and is_audio_file(e.name):
                    stem, ext = e.name.rsplit(".", 1)
                    old = m.get(stem)
                    if old is None or rank[ext.lower()] < rank[old.suffix[1:].lower()]:
                        m[stem] = Path(e.path)
            self._maps[d] = m
        return self._maps[d]

    def find(self, stem: str, dirs: Iterable[Path]) -> Path | None:
        """First ``dir/stem.<audio ext>`` over ``dirs`` (in order), extensions in AUDIO_EXTENSION_NAMES order."""
        for d in dirs:
            hit = self._map(d).get(stem)
            if hit is not None:
                return hit
        return None


class CorpusBuilder:
    """Accumulates clips and problems; enforces unique ids and existing audio."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.clips: list[Clip] = []
        self.problems: list[Problem] = []
        self._ids: dict[str, str] = {}

    def problem(self, severity: Severity, where: str, message: str) -> None:
        self.problems.append(Problem(severity, where, message))

    def error(self, where: str, message: str) -> None:
        self.problem("error", where, message)

    def warning(self, where: str, message: str) -> None:
        self.problem("warning", where, message)

    def clean_captions(self, captions: Iterable[object], where: str) -> list[str]:
        """Stripped non-empty captions; a warning for each empty or non-string one."""
        out = []
        for i, c in enumerate(captions):
            if not isinstance(c, str):
                self.warning(where, f"caption {i + 1} is not a string ({c!r}); skipped")
            elif not c.strip():
                self.warning(where, f"empty caption {i + 1}; skipped")
            else:
                out.append(" ".join(c.split()))
        return out

    def add(self, clip: Clip, where: str, need_captions: bool = True) -> bool:
        """Add ``clip`` unless its id is taken or its audio is missing (each an error problem)."""
        if clip.id in self._ids:
            self.error(where, f"duplicate id {clip.id!r} (first seen at {self._ids[clip.id]}); row skipped")
            return False
        if not clip.audio.is_file():
            self.error(where, f"missing audio file {clip.audio} for id {clip.id!r}; clip skipped")
            return False
        if need_captions and not clip.captions:
            self.warning(where, f"clip {clip.id!r} has no captions")
        self._ids[clip.id] = where
        self.clips.append(clip)
        return True

    def corpus(self) -> Corpus:
        return Corpus(self.name, self.clips, self.problems)
