"""Captions from the metadata packages ship beside their sounds (``soundseek prepare debian``).

Each reader maps paths inside an unpacked package (POSIX, relative to the tree root) to a
:class:`Label`; files a reader does not name are captioned from their file names instead.

- ``hydrogen``: a drum kit's ``drumkit.xml`` names each instrument and its sample files
  ("Snare Rock" -> ``garage-city-snare.wav``): the caption is the instrument's name.
- ``qabcs``: ``abcs/all/noises/*.ogg`` are sounds of the pictured things (named by the file and
  by ``abcs/en/abc1.json``); ``abcs/<lang>/sounds/words/*`` are spoken words and ``.../alpha/*``
  spoken letters (speech: "a person saying 'albatros' in Polish", from ``abc1.properties``).
- ``ktuberling``: ``sounds/<lang>.soundtheme`` names each spoken word in English.
- ``klettres``: ``<lang>/sounds.xml`` names spoken letters and syllables.
- ``asterisk``: telephone prompts of one English speaker (digits, letters, phonetic alphabet,
  other prompts).
- ``guitar_strums``: a Hydrogen kit of strummed guitar chords named ``<chord>[_UP|_DOWN]_NN``.
- ``bucklespring``: ``<scancode>-<0|1>.wav`` is a key of an IBM Model M keyboard pressed (0)
  or released (1).

Speech is never captioned with what the word means as if the thing were heard: the caption
says that a person says the word.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from soundseek.data.debian_captions import clean_label
from soundseek.data.instruments import article

MAX_METADATA_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Label:
    """Captions (first = main) of one file, and whether it is speech."""

    captions: tuple[str, ...]
    speech: bool = False


LANGUAGES = {
    "ar": "Arabic", "be": "Belarusian", "ca": "Catalan", "cs": "Czech", "da": "Danish", "de": "German",
    "el": "Greek", "en": "English", "en_gb": "English", "en_GB": "English", "es": "Spanish", "fi": "Finnish",
    "fr": "French", "ga": "Irish", "gl": "Galician", "he": "Hebrew", "hu": "Hungarian", "id": "Indonesian",
    "it": "Italian", "la_it": "Latin", "la_ru": "Latin", "lt": "Lithuanian", "ml": "Malayalam",
    "nb": "Norwegian", "nds": "Low German", "nl": "Dutch", "nn": "Norwegian", "pl": "Polish",
    "pt": "Portuguese", "pt_BR": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "tl": "Tagalog", "tn": "Tswana", "tr": "Turkish",
    "uk": "Ukrainian", "wa": "Walloon",
}
"""Language code (as used in package folders) -> English name."""


def language_name(code: str) -> str | None:
    return LANGUAGES.get(code) or LANGUAGES.get(code.split("@")[0]) or LANGUAGES.get(code.split("_")[0])


def saying(what: str, code: str | None, speaker: str = "a person") -> str:
    """``saying("hat", "fr")`` -> ``"a person saying 'hat' in French"``."""
    lang = language_name(code) if code else None
    return f"{speaker} saying {what}" + (f" in {lang}" if lang else "")


def _read_small(path: Path) -> str | None:
    if not path.is_file() or path.stat().st_size > MAX_METADATA_BYTES:
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def _xml(path: Path) -> ET.Element | None:
    text = _read_small(path)
    if text is None or "<!ENTITY" in text:           # no entity expansion from package files
        return None
    try:
        return ET.fromstring(text)
    except ET.ParseError:
        return None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _rel(tree: Path, path: Path) -> str:
    return path.relative_to(tree).as_posix()


# ------------------------------------------------------------------ readers
def hydrogen_labels(tree: Path) -> dict[str, Label]:
    """Instrument names of every ``drumkit.xml`` in the tree, keyed by sample path."""
    out: dict[str, Label] = {}
    for kit in sorted(tree.rglob("drumkit.xml")):
        root = _xml(kit)
        if root is None:
            continue
        for inst in root.iter():
            if _local(inst.tag) != "instrument":
                continue
            name = next((c.text for c in inst if _local(c.tag) == "name" and c.text), None)
            label = clean_label(name) if name else None
            if label is None:
                continue
            for el in inst.iter():
                if _local(el.tag) == "filename" and el.text:
                    sample = kit.parent / el.text.strip()
                    if sample.is_file():
                        out[_rel(tree, sample)] = Label((label, f"{article(label)} hit from a drum kit"))
    return out


def _qabcs_words(props: str) -> dict[str, str]:
    """``abc1.properties``: ``category:letter=word==picture=noise`` -> {word file stem: word}."""
    out: dict[str, str] = {}
    for line in props.splitlines():
        if "=" not in line or line.startswith("#") or ":" not in line.split("=")[0]:
            continue
        word = line.split("=", 1)[1].split("==", 1)[0].strip()
        if word:
            out[word.lower().replace(" ", "_")] = word.lower()
    return out


def qabcs_labels(tree: Path) -> dict[str, Label]:
    """Noises (non-speech) and spoken words/letters (speech) of qabcs (see module docstring)."""
    out: dict[str, Label] = {}
    abcs = next((p for p in tree.rglob("abcs") if p.is_dir()), None)
    if abcs is None:
        return out
    names: dict[str, set[str]] = {}
    en = _read_small(abcs / "en" / "abc1.json")
    if en:
        try:
            letters = json.loads(en).get("letters", [])
        except json.JSONDecodeError:
            letters = []
        for entry in letters:
            for cats in entry.values():
                for item in cats.values() if isinstance(cats, dict) else ():
                    if isinstance(item, dict) and item.get("noises") and item.get("name"):
                        names.setdefault(item["noises"], set()).add(item["name"].lower())
    for noise in sorted((abcs / "all" / "noises").glob("*")):
        label = clean_label(noise.stem)
        if label is None:
            continue
        caps = [label]
        named = names.get(noise.name, set())
        if len(named) == 1 and (only := clean_label(next(iter(named)))) and only != label:
            caps.append(only)
        out[_rel(tree, noise)] = Label(tuple(caps))
    for lang_dir in sorted(p for p in abcs.iterdir() if p.is_dir() and p.name != "all"):
        code = lang_dir.name
        props = _read_small(lang_dir / "abc1.properties") or ""
        words = _qabcs_words(props)
        for f in sorted((lang_dir / "sounds" / "words").glob("*")):
            word = words.get(f.stem.lower(), f.stem.replace("_", " ").lower())
            out[_rel(tree, f)] = Label((saying(f"'{word}'", code),), speech=True)
        for f in sorted((lang_dir / "sounds" / "alpha").glob("*")):
            out[_rel(tree, f)] = Label((saying(f"the letter '{f.stem}'", code),), speech=True)
    return out


def ktuberling_labels(tree: Path) -> dict[str, Label]:
    """Spoken words of KTuberling, named in English by ``<lang>.soundtheme``."""
    out: dict[str, Label] = {}
    for theme in sorted(tree.rglob("*.soundtheme")):
        root = _xml(theme)
        if root is None:
            continue
        code = root.get("code") or theme.stem
        for el in root.iter("sound"):
            name, file = el.get("name"), el.get("file")
            if name and file:
                word = name.replace("_", " ").lower()
                out[_rel(tree, theme.parent / file)] = Label((saying(f"'{word}'", code),), speech=True)
    return out


def klettres_labels(tree: Path) -> dict[str, Label]:
    """Spoken letters and syllables of KLettres (``<lang>/sounds.xml``)."""
    out: dict[str, Label] = {}
    for xml in sorted(tree.rglob("sounds.xml")):
        root = _xml(xml)
        if root is None:
            continue
        base = xml.parent.parent
        for lang in root.iter("language"):
            code = lang.get("code") or xml.parent.name
            for group in lang:
                kind = {"alphabet": "the letter", "syllables": "the syllable"}.get(_local(group.tag))
                if kind is None:
                    continue
                for el in group.iter("sound"):
                    name, file = el.get("name"), el.get("file")
                    if name and file:
                        out[_rel(tree, base / file)] = Label((saying(f"{kind} '{name.lower()}'", code),),
                                                             speech=True)
    return out


_PHONETIC = re.compile(r"^([a-z0-9])_p$")


def asterisk_labels(tree: Path) -> dict[str, Label]:
    """Telephone prompts of a female English speaker."""
    out: dict[str, Label] = {}
    for f in sorted(tree.rglob("*.wav")):
        folder, stem = f.parent.name, f.stem
        if folder == "digits" and stem.isdigit():
            what = f"the number {int(stem)}"
        elif folder == "letters" and len(stem) == 1:
            what = f"the letter '{stem}'"
        elif folder == "phonetic" and (m := _PHONETIC.match(stem)):
            what = f"the phonetic alphabet word for '{m.group(1)}'"
        else:
            what = "a telephone system prompt"
        out[_rel(tree, f)] = Label((saying(what, "en", "a woman"),), speech=True)
    return out


_KEYS = {"01": "escape", "0e": "backspace", "0f": "tab", "1c": "enter", "1d": "control", "2a": "shift",
         "36": "shift", "38": "alt", "39": "space bar", "3a": "caps lock"}


def bucklespring_labels(tree: Path) -> dict[str, Label]:
    """Key presses and releases of a buckling-spring (IBM Model M) keyboard."""
    out: dict[str, Label] = {}
    for f in sorted(tree.rglob("*.wav")):
        m = re.match(r"^([0-9a-f]{2})-([01])$", f.stem)
        if not m:
            continue
        key = _KEYS.get(m.group(1), "key")
        action = "pressed" if m.group(2) == "0" else "released"
        out[_rel(tree, f)] = Label((f"mechanical keyboard {key} {action}",
                                    f"the {key} of a buckling spring keyboard being {action}"))
    return out


_CHORD = re.compile(r"^([A-G]) ?(s|sharp|b|flat)? ?(major|minor|minro)(7b5|7)?(?:_(up|down))?_\d+$", re.IGNORECASE)


def guitar_strum_labels(tree: Path) -> dict[str, Label]:
    """Strummed guitar chords of a kit (``Gminor_UP_01.flac``): "guitar strum, G minor chord"
    ("an upward strum" for ``_UP``); every other sample is named by its kit (:func:`hydrogen_labels`)."""
    out = hydrogen_labels(tree)
    for f in sorted(tree.rglob("*")):
        m = _CHORD.match(f.stem)
        if not m or not f.is_file():
            continue
        root, acc, quality, ext, way = m.groups()
        sign = {"s": " sharp", "sharp": " sharp", "b": " flat", "flat": " flat"}.get((acc or "").lower(), "")
        chord = f"{root.upper()}{sign} {'major' if quality.lower() == 'major' else 'minor'}" + (" seven flat five" if ext and ext.lower() == "7b5"
                                                             else " seven" if ext else "")
        strum = f"{way.lower()}ward strum" if way else "strum"
        out[_rel(tree, f)] = Label((f"guitar {strum} {chord} chord",
                                     f"an acoustic guitar strumming {'an' if root.upper() in 'AEF' else 'a'} {chord} chord"))
    return out


LABEL_READERS: dict[str, Callable[[Path], dict[str, Label]]] = {
    "hydrogen": hydrogen_labels, "guitar_strums": guitar_strum_labels, "qabcs": qabcs_labels, "ktuberling": ktuberling_labels,
    "klettres": klettres_labels, "asterisk": asterisk_labels, "bucklespring": bucklespring_labels,
}


def load_labels(kind: str, tree: Path) -> dict[str, Label]:
    """Labels of an unpacked package by metadata reader ``kind`` ("path" = none)."""
    if kind == "path":
        return {}
    if kind not in LABEL_READERS:
        raise ValueError(f"unknown label reader {kind!r}; valid: path, {', '.join(LABEL_READERS)}")
    return LABEL_READERS[kind](tree)


def is_speech_path(rel: str | PurePosixPath) -> bool:
    """Folders that hold speech in any package (voices, announcers, spoken words)."""
    low = "/" + str(rel).lower()
    return any(k in low for k in ("/voice/", "/voices/", "/speech/", "/announcer/", "/words/"))
