"""Package-specific readers and per-file licenses for :mod:`soundseek.data.debian`.

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

import re
import struct
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from soundseek.data.debian import Found, PackageReport, PackageSpec, _inner
from soundseek.data.debian_captions import caption_from_path, clean_label

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


def read_opensfx(tree: Path, spec: PackageSpec, report: PackageReport) -> Iterator[Found]:
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


def read_tuxpaint_stamps(tree: Path, spec: PackageSpec, report: PackageReport) -> Iterator[Found]:
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
        yield Found(str(rel), _inner(rel), caption, spec.license, path=path)
