"""Generic JSONL manifest reader (METHODS.md §1): a user's own captioned collection.

Expected tree::

    root/
    ├── manifest.jsonl      # one JSON object per line
    └── audio/...           # any layout; paths in the manifest are relative to its folder

Line keys: ``audio`` (required; relative to the manifest's folder, or absolute),
``captions`` (list of strings) or ``caption`` (one string), optional ``split``, ``tags``
(list of strings), ``duration`` (seconds), ``id`` (default: the ``audio`` path as written,
normalised to forward slashes without ``./``); every other key goes to ``clip.meta``.
Example line::

    {"audio": "audio/wesnoth/wolf-growl-1.ogg", "captions": ["wolf growl"], "license": "GPL-2.0"}

Blank lines and lines starting with ``#`` are skipped.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Sequence

from soundseek.data.formats._common import CorpusBuilder, check_root
from soundseek.data.types import Clip, Corpus

_KNOWN = {"audio", "captions", "caption", "split", "tags", "duration", "id"}


def load_manifest(root: Path | str, splits: Sequence[str] | str | None = None) -> Corpus:
    """Read a JSONL manifest.

    Args:
        root: the ``.jsonl`` file, or a folder holding ``manifest.jsonl``.
        splits: keep only clips whose ``split`` is in this list (any names); None = all.

    Raises:
        FileNotFoundError: the file (or ``manifest.jsonl`` in the folder) does not exist.
    """
    path = check_root(root, "Manifest")
    if path.is_dir():
        path = path / "manifest.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"No manifest.jsonl in {path.parent}")
    keep = {splits} if isinstance(splits, str) else (set(splits) if splits is not None else None)
    base = path.parent
    name = base.name if path.name == "manifest.jsonl" else path.stem
    b = CorpusBuilder(name)
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                b.error(where, f"malformed JSON on line {n} ({e.msg} at column {e.colno}); line skipped")
                continue
            clip = _clip(row, base, where, b)
            if clip is not None and (keep is None or clip.split in keep):
                b.add(clip, where)
    return b.corpus()


def _clip(row: object, base: Path, where: str, b: CorpusBuilder) -> Clip | None:
    if not isinstance(row, dict) or not isinstance(row.get("audio"), str) or not row["audio"].strip():
        b.error(where, 'wrong keys: expected an object with "audio" (path) and "captions" (list) or "caption"; '
                "line skipped")
        return None
    audio = row["audio"].strip()
    if "captions" in row:
        raw = row["captions"]
        if not isinstance(raw, list):
            b.error(where, f'"captions" must be a list of strings, got {type(raw).__name__}; line skipped')
            return None
    elif "caption" in row:
        raw = [row["caption"]]
    else:
        raw = []
    caps = b.clean_captions(raw, where)
    path = Path(audio) if Path(audio).is_absolute() else base / audio
    clip_id = row.get("id") if isinstance(row.get("id"), str) and row["id"] else _rel_id(audio, base)
    tags = row.get("tags", [])
    if not isinstance(tags, list):
        b.warning(where, f'"tags" must be a list, got {tags!r}; ignored')
        tags = []
    duration = row.get("duration")
    if duration is not None and (isinstance(duration, bool) or not isinstance(duration, (int, float))):
        b.warning(where, f'"duration" must be a number of seconds, got {duration!r}; ignored')
        duration = None
    split = row.get("split")
    meta = {k: v for k, v in row.items() if k not in _KNOWN}
    return Clip(clip_id, path, caps, str(split) if split is not None else None, [str(t) for t in tags],
                float(duration) if duration is not None else None, meta)


def _rel_id(audio: str, base: Path) -> str:
    p = Path(audio)
    if p.is_absolute():
        try:
            return p.relative_to(base).as_posix()
        except ValueError:
            return p.as_posix()
    return PurePosixPath(audio.replace("\\", "/")).as_posix()
