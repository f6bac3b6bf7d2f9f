"""Shared types of the Debian corpus builder (``soundseek prepare debian``).

The lowest layer of ``soundseek.data.debian*``: the package spec, the per-package report, the
sound found in a package and the path helpers. :mod:`soundseek.data.debian_readers` (how sounds
are found in a package) and :mod:`soundseek.data.debian` (allow-list, download, build) both
import from here, never from each other in a circle.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterable

from soundseek.fileio import AUDIO_EXTENSIONS as _AUDIO_FILES

AUDIO_EXTENSIONS = frozenset(_AUDIO_FILES) | {".opus", ".aifc", ".au", ".voc", ".caf", ".w64"}
"""Extensions libsndfile (1.2) decodes (soundseek's own plus rarer ones packages ship); files
are kept as shipped."""
UNSUPPORTED_AUDIO = frozenset({".mod", ".xm", ".it", ".s3m", ".mid", ".midi", ".wv", ".raw",
                               ".spx", ".ape", ".wma", ".m4a", ".aac"})
"""Audio-like files that are skipped (trackers, MIDI, WavPack, headerless PCM, ...)."""
SKIP_DIRS = ("*/music/*", "*/musics/*", "*/doc/*", "*/locale/*")
"""Folders never read (music, documentation, translations), unless a spec's ``include`` names them."""


def matches(name: str, patterns: Iterable[str]) -> str | None:
    """The first glob of ``patterns`` that ``name`` matches (case-sensitive), else None."""
    return next((p for p in patterns if fnmatch.fnmatchcase(name, p)), None)


@dataclass(frozen=True)
class PackageSpec:
    """One Debian package and how to read its sounds.

    Args:
        name: Debian package name; may be a glob (``tuxpaint-stamps-*``) resolved with apt-cache.
        license: license of the sounds when the copyright file does not say per file (SPDX-like).
        exclude: globs (on the path inside the package) of files to leave out; the music,
            doc and locale folders are always left out (unless ``include`` names them).
        drop_prefixes: leading caption words to drop (e.g. the theme name "oxygen").
        folder_context: put the informative parent folder in front of the caption.
        reader: how sounds are found, a name of :data:`soundseek.data.debian_readers.READERS`:
            "files" (plain sound files, WavPack and sounds inside ``.rcc`` / ``.pk3`` / ``.zip`` /
            ``.wz`` archives), "opensfx" (OpenTTD ``.cat`` sample archive) or "tuxpaint_stamps"
            (stamp sounds with their ``.txt`` descriptions).
        labels: where captions come from: "path" (file names) or a metadata reader of
            :mod:`soundseek.data.debian_labels` ("hydrogen", "qabcs", "ktuberling", "klettres",
            "asterisk", "bucklespring"); files the metadata does not name fall back to "path".
        include: if set, only files matching one of these globs are read.
        speech: every kept file is speech (captioned as such; counted against the speech cap).
        language: the language of the file names ("cs", "de", "fr"): words are translated to
            English with :data:`soundseek.data.debian_captions.TRANSLATIONS` before captioning.
        cap: if > 0, at most this many clips of the files matching ``cap_globs`` are kept (chosen
            by a hash of their path): gun and weapon sounds that would otherwise dominate.
        cap_globs: globs (on the path inside the package) of the capped files.
        coded: globs of files whose names are codes or numbers nobody can expand with
            confidence (``pcv607``, ``mgbar2``): dropped, never guessed.
        unpack: if set, only these globs (tar member paths, ``./usr/share/...``) are unpacked
            from the ``.deb`` (a 1.4 GB package whose sounds are a small part of it).
        unpack_members: with ``unpack``: an unpacked zip archive is replaced by a folder of its
            members matching these globs (``public.zip`` -> ``public/audio/...``).
    """

    name: str
    license: str
    exclude: tuple[str, ...] = ()
    drop_prefixes: tuple[str, ...] = ()
    folder_context: bool = False
    reader: str = "files"
    labels: str = "path"
    include: tuple[str, ...] = ()
    speech: bool = False
    language: str = "en"
    cap: int = 0
    cap_globs: tuple[str, ...] = ()
    coded: tuple[str, ...] = ()
    unpack: tuple[str, ...] = ()
    unpack_members: tuple[str, ...] = ()


@dataclass
class Found:
    """A sound to put in the corpus: ``data`` is set for sounds cut out of an archive or decoded."""

    origin: str                 # path inside the package (or archive#member)
    out_name: str               # path under audio/<package>/
    caption: str
    license: str
    path: Path | None = None
    data: bytes | None = None
    extra: tuple[str, ...] = ()     # more captions from metadata
    speech: bool = False


@dataclass
class PackageReport:
    """What happened to one package's files."""

    package: str
    found: int = 0
    kept: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, what: str) -> None:
        self.skipped.setdefault(reason, []).append(what)

    def line(self) -> str:
        why = ", ".join(f"{k}: {len(v)}" for k, v in sorted(self.skipped.items()))
        return f"{self.package:28s} found {self.found:5d}  kept {self.kept:5d}  skipped {self.found - self.kept:5d}" + (
            f"  ({why})" if why else "")


def inner_path(rel: PurePosixPath) -> str:
    """Path under audio/<package>/: without the usr/share[/games] prefix."""
    parts = list(rel.parts)
    for head in ("usr", "share", "games"):
        if parts and parts[0] == head and len(parts) > 1:
            parts.pop(0)
    return "/".join(parts)
