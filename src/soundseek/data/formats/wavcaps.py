"""WavCaps reader (METHODS.md §1).

Expected tree (``root`` may be one JSON file or a folder of them, one per source)::

    root/
    ├── fsd_final.json          # {"num_captions_per_audio": 1, "data": [{"id", "caption",
    ├── bbc_final.json          #   "audio" or "wav_path", "duration", ...}, ...]}
    ├── sb_final.json
    ├── as_final.json
    └── <audio>                 # resolved as below

Audio of an entry, relative to ``audio_root`` when given, else to the JSON file's folder:

1. ``wav_path`` when present, else ``audio`` unless it is the placeholder ``"wav_path"``
   the published JSONs carry;
2. otherwise a file named by the id (its extension stripped: BBC/AudioSet ids are
   ``"07075002.wav"``, ``"Y...wav"``) plus any audio extension, searched in
   ``<base>/<json stem>/`` then ``<base>/``.

Card: ~403k clips with one ChatGPT-rewritten caption each, sources FreeSound, BBC Sound
Effects, SoundBible, AudioSet_SL; a pre-training set, so every clip gets split ``train``.
Clip id = ``"<json stem>/<id>"`` (ids repeat across sources). Entry keys other than
id/caption/audio/wav_path/duration/tags go to ``clip.meta`` (plus ``source``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from soundseek.data.formats._common import CorpusBuilder, DirIndex, check_root, check_splits
from soundseek.fileio import AUDIO_EXTENSION_NAMES
from soundseek.data.types import Clip, Corpus

SPLITS: tuple[str, ...] = ("train",)
SOURCES: dict[str, int] = {"FreeSound": 262300, "BBC_Sound_Effects": 31201, "SoundBible": 1232, "AudioSet_SL": 108317}
PLACEHOLDER = "wav_path"
CITATION = """@article{mei2024wavcaps,
  title={WavCaps: A ChatGPT-Assisted Weakly-Labelled Audio Captioning Dataset for Audio-Language
         Multimodal Research},
  author={Mei, Xinhao and Meng, Chutong and Liu, Haohe and Kong, Qiuqiang and Ko, Tom and Zhao, Chengqi
          and Plumbley, Mark D. and Zou, Yuexian and Wang, Wenwu},
  journal={IEEE/ACM TASLP}, volume={32}, pages={3339--3354}, year={2024}}"""
_KNOWN = {"id", "caption", "audio", "wav_path", "duration", "tags"}


def json_files(root: Path) -> list[Path]:
    """The JSON files read for ``root`` (itself, or the sorted ``*.json`` of the folder)."""
    return [root] if root.is_file() else sorted(p for p in root.glob("*.json") if not p.name.startswith("."))


def load_wavcaps(root: Path | str, splits: Sequence[str] | str | None = None,
                 audio_root: Path | str | None = None) -> Corpus:
    """Read one WavCaps JSON or a folder of them.

    Args:
        root: a JSON file or a folder of JSON files.
        splits: only ``train`` is valid (WavCaps has no splits).
        audio_root: base folder for audio paths (default: each JSON's folder).

    Raises:
        FileNotFoundError: ``root`` missing or holding no JSON file.
        ValueError: a JSON file is not valid JSON or has no ``data`` list.
    """
    root = check_root(root, "WavCaps")
    check_splits(splits, SPLITS, fmt="WavCaps")
    files = json_files(root)
    if not files:
        raise FileNotFoundError(f"No WavCaps *.json file in {root}")
    b = CorpusBuilder("wavcaps")
    index = DirIndex()
    for jf in files:
        try:
            doc = json.loads(jf.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{jf}: not valid JSON ({e})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise ValueError(f'{jf}: expected a WavCaps JSON {{"data": [{{"id", "caption", "audio", ...}}]}}')
        base = Path(audio_root).expanduser().resolve() if audio_root is not None else jf.parent
        source = jf.stem
        for i, e in enumerate(doc["data"]):
            where = f"{jf}:data[{i}]"
            if not isinstance(e, dict) or "id" not in e or "caption" not in e:
                b.error(where, 'wrong keys: expected an object with "id", "caption" and "audio" or "wav_path"; '
                        "entry skipped")
                continue
            raw = e["caption"] if isinstance(e["caption"], list) else [e["caption"]]
            caps = b.clean_captions(raw, where)
            path = _resolve(e, base, source, index)
            if path is None:
                b.error(where, f"missing audio file for id {e['id']!r} (looked for {_describe(e, base, source)}); "
                        "entry skipped")
                continue
            duration = e.get("duration")
            meta = {k: v for k, v in e.items() if k not in _KNOWN}
            meta["source"] = source
            tags = [str(t) for t in e.get("tags", [])] if isinstance(e.get("tags"), list) else []
            b.add(Clip(f"{source}/{e['id']}", path, caps, "train", tags,
                       float(duration) if isinstance(duration, (int, float)) else None, meta), where)
    return b.corpus()


def _explicit(e: dict) -> str | None:
    for key in ("wav_path", "audio"):
        v = e.get(key)
        if isinstance(v, str) and v.strip() and v != PLACEHOLDER:
            return v
    return None


def _id_stem(e: dict) -> str:
    s = str(e["id"])
    if "." in s and s.rsplit(".", 1)[1].lower() in AUDIO_EXTENSION_NAMES:
        s = s.rsplit(".", 1)[0]
    return s


def _resolve(e: dict, base: Path, source: str, index: DirIndex) -> Path | None:
    rel = _explicit(e)
    if rel is not None:
        p = base / rel
        return p if p.is_file() else None
    return index.find(_id_stem(e), [base / source, base])


def _describe(e: dict, base: Path, source: str) -> str:
    rel = _explicit(e)
    if rel is not None:
        return str(base / rel)
    return f"{_id_stem(e)}.<audio ext> in {base / source} and {base}"
