"""How sounds are found in an unpacked package, and per-file licenses (:mod:`soundseek.data.debian`).

Readers are chosen by name from :data:`READERS` (``PackageSpec.reader``); each is called as
``reader(tree, spec, report, package)`` and yields :class:`~soundseek.data.debian_types.Found`
items in a deterministic (sorted) order:

- :func:`discover_files` ("files"): plain sound files, and sounds inside ``.rcc`` / ``.pk3`` /
  ``.zip`` / ``.wz`` archives, captioned from their paths or the package's metadata
  (:mod:`soundseek.data.debian_labels`); WavPack is decoded.
- :func:`read_opensfx`: OpenTTD's ``opensfx.cat`` archive (``openttd-opensfx``): an index of
  ``(offset, size)`` pairs, each entry a name string (``"Steam train station departure". By ...
  License: ...``) followed by a RIFF/WAVE file, cut out byte for byte.
- :func:`read_tuxpaint_stamps`: stamp sounds (``<stamp>.ogg`` beside ``<stamp>.png|svg``) of
  ``tuxpaint-stamps-*``, captioned by the English line of ``<stamp>.txt`` when it is short.
  Spoken descriptions (``*_desc*.ogg``), localised names (``<stamp>_<lang>.ogg``), letters and
  digits (speech) are left out.
- :func:`dep5_license`: best-effort per-file license from a machine-readable
  ``debian/copyright`` (DEP-5) file.
"""
from __future__ import annotations

import hashlib
import re
import struct
import subprocess
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Protocol

from soundseek.data.debian_captions import caption_from_path, clean_label
from soundseek.data.debian_types import (AUDIO_EXTENSIONS, SKIP_DIRS, UNSUPPORTED_AUDIO, Found, PackageReport,
                                         PackageSpec, inner_path, matches)

# ------------------------------------------------------------------ DEP-5 copyright
_SPDX = {"CC0": "CC0-1.0", "GPL-2": "GPL-2.0-only", "GPL-2+": "GPL-2.0-or-later", "GPL-3": "GPL-3.0-only",
         "GPL-3+": "GPL-3.0-or-later", "LGPL-2.1+": "LGPL-2.1-or-later", "LGPL-3+": "LGPL-3.0-or-later",
         "CC-BY-SA-3": "CC-BY-SA-3.0", "CC-BY-SA-3.0+": "CC-BY-SA-3.0-or-later", "GPL-3.0+": "GPL-3.0-or-later",
         "GPL-2.0+": "GPL-2.0-or-later", "Expat": "MIT", "public-domain": "public-domain"}


def parse_dep5(text: str) -> list[tuple[list[str], str]]:
    """``[(file patterns, license short name)]`` of the ``Files:`` stanzas, in file order."""
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:(.*(?:\n[ \t].*)*)", stanza, re.MULTILINE)
        lic = re.search(r"^License:[ \t]*(\S.*)$", stanza, re.MULTILINE)
        if files and lic:
            out.append((files.group(1).split(), lic.group(1).strip()))
    return out


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(body + r"\Z")


def dep5_license(stanzas: list[tuple[list[str], str]], rel: str) -> str | None:
    """License of the most specific non-``*`` stanza whose pattern matches a tail of ``rel``.

    Source-tree patterns (``share/hedgewars/Data/Sounds/*``) are matched against the installed
    path (``usr/share/games/hedgewars/Data/Sounds/x.ogg``) by aligning pattern tails with path
    tails; specificity = literal characters matched; later stanzas win ties. None if only the
    catch-all matches (the package's default license is used then).
    """
    parts = rel.split("/")
    best: tuple[int, int, str] | None = None
    for order, (patterns, lic) in enumerate(stanzas):
        for pat in patterns:
            if pat.strip("*/") == "":
                continue
            pparts = pat.strip("/").split("/")
            for k in range(len(pparts)):               # drop leading pattern components
                tail = "/".join(pparts[k:])
                if k > 0 and len(pparts) - k < 2:
                    break
                regex = _pattern_regex(tail)
                if any(regex.match("/".join(parts[i:])) for i in range(len(parts))):
                    score = sum(c not in "*?" for c in tail)
                    if best is None or (score, order) >= best[:2]:
                        best = (score, order, lic)
                    break
    if best is None:
        return None
    lic = best[2].split("\n")[0].strip()
    return _SPDX.get(lic, lic)


def license_lookup(tree: Path, package: str) -> Callable[[str], str | None]:
    """Per-file license function for an unpacked package (None when not machine-readable)."""
    copyright_file = tree / "usr" / "share" / "doc" / package / "copyright"
    text = copyright_file.read_text(errors="replace") if copyright_file.is_file() else ""
    stanzas = parse_dep5(text) if "Files:" in text else []
    return lambda rel: dep5_license(stanzas, rel) if stanzas else None


# ------------------------------------------------------------------ OpenTTD OpenSFX
_CLIMATES = ("toyland", "tropical", "arctic", "temperate", "sub arctic", "sub tropical")
_LICENSES = (("Zero 1.0", "CC0-1.0"), ("Attribution-ShareAlike 3.0", "CC-BY-SA-3.0"),
             ("Attribution 3.0", "CC-BY-3.0"), ("Public Domain", "public-domain"))


def opensfx_caption(title: str) -> str | None:
    """``"Toyland: Comedy bus start (1)"`` -> ``"comedy bus start"``; None for unused slots."""
    if title.lower().startswith("unused"):
        return None
    text = re.sub(r"\([^)]*\)?", " ", title)           # "(1)", "(building docks/canals/river)"
    head, _, rest = text.partition(":")
    if rest and head.strip().lower() in _CLIMATES:
        text = rest
    return clean_label(text.replace("/", " or "))


def read_opensfx(tree: Path, spec: PackageSpec, report: PackageReport, package: str = "") -> Iterator[Found]:
    """Sounds of every ``*.cat`` archive in the package (see module docstring)."""
    for cat in sorted(tree.rglob("*.cat")):
        data = cat.read_bytes()
        rel = PurePosixPath(cat.relative_to(tree).as_posix())
        count = (struct.unpack_from("<I", data, 0)[0] & 0x7FFFFFFF) // 8
        for i in range(count):
            report.found += 1
            offset, size = struct.unpack_from("<II", data, 8 * i)
            offset &= 0x7FFFFFFF
            n = data[offset]
            raw = data[offset + 1: offset + 1 + n].rstrip(b"\0").decode("utf-8", "replace")
            wav = data[offset + 1 + n: offset + 1 + n + size]
            title = raw.split('"')[1] if raw.count('"') >= 2 else raw
            caption = opensfx_caption(title)
            if caption is None:
                report.skip("name carries no meaning", f"{rel}#{i} {title!r}")
                continue
            if wav[:4] != b"RIFF" or size <= 44:
                report.skip("empty or not RIFF/WAVE", f"{rel}#{i}")
                continue
            lic = next((spdx for key, spdx in _LICENSES if key in raw), spec.license)
            slug = re.sub(r"[^a-z0-9]+", "_", caption).strip("_")
            yield Found(f"{rel}#{i}", f"{rel.stem}/{i:02d}_{slug}.wav", caption, lic, data=wav)


# ------------------------------------------------------------------ Tux Paint stamps
_LANG_SUFFIX = re.compile(r"_[a-z]{2,3}(?:_[A-Za-z]{2,4})?$")
_SPEECH_DIRS = ("/alphabets/", "/math/", "/hanukkah/")


def stamp_caption(sound: Path) -> str | None:
    """English description from ``<stamp>.txt`` ("A red apple." -> "red apple") if short, else the name."""
    txt = sound.with_suffix(".txt")
    if txt.is_file():
        first = next((ln.strip() for ln in txt.read_text(errors="replace").splitlines() if ln.strip()), "")
        words = re.sub(r"[.!?]+$", "", first).split()
        if words and words[0].lower() in ("a", "an", "the"):
            words = words[1:]
        if 0 < len(words) <= 8 and "=" not in first:
            return " ".join(words).lower().rstrip(",;:")
    return caption_from_path(sound.name)


def read_tuxpaint_stamps(tree: Path, spec: PackageSpec, report: PackageReport,
                         package: str = "") -> Iterator[Found]:
    """Stamp sound effects (see module docstring)."""
    for path in sorted(p for p in tree.rglob("*") if p.suffix.lower() in (".ogg", ".wav")):
        rel = PurePosixPath(path.relative_to(tree).as_posix())
        report.found += 1
        if "_desc" in path.stem:
            report.skip("spoken description", str(rel))
            continue
        if not any(path.with_suffix(s).is_file() for s in (".png", ".svg")) and _LANG_SUFFIX.search(path.stem):
            report.skip("localised spoken name", str(rel))
            continue
        if any(d in "/" + str(rel) for d in _SPEECH_DIRS):
            report.skip("spoken letter/number", str(rel))
            continue
        caption = stamp_caption(path)
        if caption is None:
            report.skip("name carries no meaning", str(rel))
            continue
        yield Found(str(rel), inner_path(rel), caption, spec.license, path=path)


# ------------------------------------------------------------------ plain files (and archives)
def _entries(tree: Path, report: PackageReport) -> Iterator[tuple[PurePosixPath, str, Path | None, bytes | None]]:
    """``(path for rules/captions, origin, file, bytes)`` of every file and archive member, sorted."""
    from soundseek.data.debian_archives import ARCHIVE_EXTENSIONS, ArchiveError, read_rcc, read_zip

    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        rel = PurePosixPath(path.relative_to(tree).as_posix())
        if rel.suffix.lower() not in ARCHIVE_EXTENSIONS:
            yield rel, str(rel), path, None
            continue
        try:
            members = read_rcc(path.read_bytes()) if rel.suffix.lower() == ".rcc" else read_zip(path)
            for member, body in members:
                if PurePosixPath(member).suffix.lower() in AUDIO_EXTENSIONS | UNSUPPORTED_AUDIO:
                    yield rel.parent / rel.stem / member, f"{rel}#{member}", None, body
        except ArchiveError as e:
            report.skip(f"unreadable archive ({e})", str(rel))


def discover_files(tree: Path, spec: PackageSpec, report: PackageReport, package: str = "") -> Iterator[Found]:
    """Sound files of an unpacked package (and of archives in it) with captions (sorted, deterministic).

    Licenses come from the package's DEP-5 copyright file when it names the file
    (:func:`license_lookup`), else ``spec.license``.
    """
    from soundseek.data.debian_archives import decode_wavpack, wavpack_available
    from soundseek.data.debian_labels import load_labels

    labels = load_labels(spec.labels, tree)
    license_of = license_lookup(tree, package or spec.name)
    for rel, origin, path, data in _entries(tree, report):
        ext = rel.suffix.lower()
        if ext not in AUDIO_EXTENSIONS and ext not in UNSUPPORTED_AUDIO:
            continue
        report.found += 1
        where = "/" + str(rel)
        included = bool(spec.include) and matches(where, spec.include)
        if not included and (matches(where, SKIP_DIRS) or matches(where.lower(), SKIP_DIRS)):
            report.skip("music/doc folder", origin)
            continue
        if matches(where, spec.exclude):
            report.skip("excluded by package rule", origin)
            continue
        if spec.include and not included:
            report.skip("not in the package's sound folders", origin)
            continue
        if matches(where, spec.coded):
            report.skip("coded name (not expanded)", origin)
            continue
        out_name = inner_path(rel)
        if ext == ".wv" and path is not None and wavpack_available():
            try:
                data = decode_wavpack(path)
            except (ValueError, OSError, subprocess.SubprocessError) as e:
                report.skip(f"WavPack decoding failed ({type(e).__name__})", origin)
                continue
            path, out_name = None, out_name[: -len(ext)] + ".wav"
        elif ext in UNSUPPORTED_AUDIO:
            hint = " (install the Debian package wavpack)" if ext == ".wv" else ""
            report.skip(f"format {ext} not decoded by libsndfile{hint}", origin)
            continue
        label = labels.get(str(rel))
        if label is not None:
            caption, extra, speech = label.captions[0], label.captions[1:], label.speech
        else:
            caption = caption_from_path(rel, spec.drop_prefixes, spec.folder_context, spec.language)
            extra, speech = (), False
        if caption is None:
            report.skip("name carries no meaning", origin)
            continue
        lic = license_of(str(rel)) or spec.license
        yield Found(origin, out_name, caption, lic, path=path, data=data, extra=extra,
                    speech=speech or spec.speech)


# ------------------------------------------------------------------ registry and caps
class Reader(Protocol):
    def __call__(self, tree: Path, spec: PackageSpec, report: PackageReport, package: str = "") -> Iterator[Found]:
        ...


READERS: dict[str, Reader] = {
    "files": discover_files,
    "opensfx": read_opensfx,
    "tuxpaint_stamps": read_tuxpaint_stamps,
}
"""Reader name (``PackageSpec.reader``) -> function yielding the package's sounds."""


def get_reader(name: str) -> Reader:
    """The reader called ``name``; ValueError listing the valid names otherwise."""
    if name not in READERS:
        raise ValueError(f"unknown reader {name!r}; valid: {', '.join(sorted(READERS))}")
    return READERS[name]


def cap_items(items: Iterable[Found], spec: PackageSpec, report: PackageReport) -> Iterator[Found]:
    """Keep at most ``spec.cap`` of the items matching ``spec.cap_globs`` (gun and weapon sounds),
    chosen by a hash of their origin (deterministic); the others pass unchanged, in order."""
    if spec.cap <= 0 or not spec.cap_globs:
        yield from items
        return
    capped: list[Found] = []
    for item in items:
        if matches("/" + item.origin, spec.cap_globs):
            capped.append(item)
        else:
            yield item
    order = sorted(capped, key=lambda f: hashlib.sha1(f.origin.encode("utf-8")).hexdigest())
    for item in order[spec.cap:]:
        report.skip(f"over the cap of {spec.cap} weapon sounds", item.origin)
    keep = {id(f) for f in order[: spec.cap]}
    yield from (f for f in capped if id(f) in keep)
