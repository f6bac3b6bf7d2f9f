"""The corpus data model shared by every format reader.

A :class:`Corpus` is a list of :class:`Clip` (one audio file, 0..n captions) plus the
:class:`Problem` list found while reading it. Readers never raise on a bad row: they
record a problem and go on, so ``soundseek data check`` can list every problem at once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

Severity = Literal["error", "warning"]


@dataclass
class Clip:
    id: str  # unique within the corpus (format-specific: file name, youtube id, relative path)
    audio: Path  # absolute path of the audio file
    captions: list[str] = field(default_factory=list)
    split: str | None = None  # "train" / "val" / "test" / fold name, when the format has one
    tags: list[str] = field(default_factory=list)
    duration: float | None = None  # seconds, when the format states it
    meta: dict = field(default_factory=dict)  # anything else the format carries (fold, target, ...)


@dataclass
class Problem:
    severity: Severity
    where: str  # file (and row) the problem is in
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class Corpus:
    name: str
    clips: list[Clip]
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def split(self, name: str) -> "Corpus":
        return Corpus(f"{self.name}:{name}", [c for c in self.clips if c.split == name], list(self.problems))

    @property
    def splits(self) -> list[str]:
        return sorted({c.split for c in self.clips if c.split is not None})

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def pairs(self) -> tuple[list[str], list[int]]:
        """All captions and, for each, the index of its clip (``caption_audio`` of the metrics)."""
        caps, owner = [], []
        for i, c in enumerate(self.clips):
            for t in c.captions:
                caps.append(t)
                owner.append(i)
        return caps, owner
