"""Plain folder of audio files (METHODS.md §1): a collection to index, usually uncaptioned.

Expected tree::

    root/
    ├── a.wav
    ├── a.txt               # optional: captions of a.wav, one per non-empty line
    └── sub/b.flac          # searched recursively

Audio = files with extension wav, flac, ogg, oga, mp3, aiff or aif (any case); names
starting with ``.`` (hidden files, macOS ``._x.wav`` forks) are skipped, also inside hidden
folders. Clips are sorted by their id = the path relative to ``root`` with forward slashes.
No splits (``clip.split`` is None; see ``soundseek.data.splits.assign_splits``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from soundseek.data.formats._common import CorpusBuilder, check_root, is_audio_file
from soundseek.data.types import Clip, Corpus


def audio_files(root: Path) -> list[Path]:
    """All audio files under ``root`` (recursive, hidden entries skipped), sorted by relative path."""
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        out += [Path(d) / f for f in files if is_audio_file(f)]
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def load_folder(root: Path | str, splits: Sequence[str] | str | None = None) -> Corpus:
    """List the audio files of a folder; captions from same-named ``.txt`` files if present.

    Args:
        root: a folder (or a single audio file).
        splits: must be None (a plain folder has no splits).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: ``splits`` given.
    """
    root = check_root(root, "Audio folder")
    if splits is not None:
        raise ValueError("A plain audio folder has no splits; use splits=None (then assign_splits)")
    files = [root] if root.is_file() else audio_files(root)
    base = root.parent if root.is_file() else root
    b = CorpusBuilder(root.name)
    for f in files:
        rel = f.relative_to(base).as_posix()
        caps: list[str] = []
        txt = f.with_suffix(".txt")
        if txt.is_file():
            try:
                caps = b.clean_captions([x for x in txt.read_text(encoding="utf-8").splitlines() if x.strip()],
                                        str(txt))
            except (OSError, UnicodeDecodeError) as e:
                b.warning(str(txt), f"unreadable caption file ({e}); ignored")
        b.add(Clip(rel, f, caps), rel, need_captions=False)
    return b.corpus()
