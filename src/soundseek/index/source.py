"""What to index: a folder (recursive scan) or a corpus/manifest (``soundseek.data.formats``).

A folder is scanned for ``AUDIO_EXTENSIONS`` without following directory symlinks; a file
symlink is indexed only if it resolves inside the folder (a planted link to ``/etc/passwd``
is reported and skipped), a dangling link or a FIFO/device/socket is reported and skipped
without being opened. The service serves only indexed files, and only while their
resolved path is still the one recorded at index time (see ``soundseek.service.app``).
"""
from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from ..fileio import AUDIO_EXTENSIONS
from ..safe_open import file_kind



@dataclass
class Entry:
    key: str  # relative POSIX path from the root (absolute path if outside it)
    path: Path  # absolute path
    captions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    source_id: str | None = None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


UNREADABLE_FOLDER = "unreadable folder"


def scan_folder(root: str | Path) -> tuple[list[Entry], list[tuple[str, str]]]:
    """Audio files under ``root`` (sorted) and (key, reason) problems (symlinks leaving root).

    A folder that cannot be listed is a problem keyed ``"sub/dir/"`` (trailing slash) whose
    reason starts with :data:`UNREADABLE_FOLDER`: the index keeps what it holds from there."""
    root = Path(root).absolute()
    real_root = root.resolve()
    entries, problems = [], []

    def unreadable(err: OSError) -> None:
        where = Path(err.filename or root)
        key = "" if where == root else where.relative_to(root).as_posix() + "/"
        problems.append((key, f"{UNREADABLE_FOLDER} ({err.strerror or err}); its indexed files are kept"))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.lower().endswith(AUDIO_EXTENSIONS):
                continue
            p = Path(dirpath) / name
            key = p.relative_to(root).as_posix()
            if p.is_symlink():
                if not p.exists():  # dangling: not an entry, so an old row for it is dropped
                    problems.append((key, "dangling symlink (not indexed)"))
                    continue
                if not _inside(p.resolve(), real_root):
                    problems.append((key, "symlink pointing outside the source folder (not indexed)"))
                    continue
            try:
                mode = p.stat().st_mode
            except OSError as err:
                problems.append((key, f"unreadable ({err.strerror or err})"))
                continue
            if not stat.S_ISREG(mode):  # a FIFO/device/socket named x.wav is never opened
                problems.append((key, f"not a regular file ({file_kind(mode)}; not indexed)"))
                continue
            entries.append(Entry(key=key, path=p))
    entries.sort(key=lambda e: e.key)
    return entries, problems


def _fallback_manifest(path: Path):
    """Minimal JSONL reader used only when ``soundseek.data.formats`` is unavailable."""
    from ..data.types import Clip, Corpus, Problem

    clips, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio"])
        except (ValueError, KeyError, TypeError) as e:
            problems.append(Problem("error", f"{path}:{n}", f"bad row ({e})"))
            continue
        audio = audio if audio.is_absolute() else (path.parent / audio)
        caps = row.get("captions") or ([row["caption"]] if "caption" in row else [])
        clips.append(Clip(id=str(row.get("id", audio.as_posix())), audio=audio.absolute(),
                          captions=list(caps), tags=list(row.get("tags", []))))
    return Corpus(path.stem, clips, problems)


def read_corpus(source: str | Path, format: str = "auto"):
    try:
        from ..data.formats import load_corpus
    except ImportError:
        return _fallback_manifest(Path(source))
    return load_corpus(source, format)


def enumerate_source(source: str | Path, format: str = "auto") -> tuple[Path, list[Entry], list[tuple[str, str]]]:
    """(root, entries, problems) for a folder (``format="auto"``/"folder-scan") or a corpus.

    A directory with ``format="auto"`` is scanned as plain audio files; a file (manifest) or a
    directory with an explicit ``format`` goes through ``load_corpus`` and keeps captions/tags.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"Index source not found: {source}")
    if source.is_dir() and format in ("auto", "scan"):
        entries, problems = scan_folder(source)
        return source.absolute(), entries, problems
    corpus = read_corpus(source, format)
    root = (source if source.is_dir() else source.parent).absolute()
    problems = [(p.where, f"{p.severity}: {p.message}") for p in corpus.problems if p.severity == "error"]
    entries, seen = [], set()
    for c in corpus.clips:
        p = Path(c.audio).absolute()
        key = p.relative_to(root).as_posix() if _inside(p, root) else p.as_posix()
        if key in seen:  # same file listed twice: merge captions
            e = next(e for e in entries if e.key == key)
            e.captions.extend(x for x in c.captions if x not in e.captions)
            continue
        seen.add(key)
        meta = {k: v for k, v in (c.meta or {}).items() if isinstance(v, (str, int, float, bool, type(None)))}
        if c.split is not None:
            meta["split"] = c.split
        entries.append(Entry(key=key, path=p, captions=list(c.captions), tags=list(c.tags), meta=meta,
                             source_id=str(c.id)))
    entries.sort(key=lambda e: e.key)
    return root, entries, problems
