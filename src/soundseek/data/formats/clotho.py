"""Clotho v2 reader (METHODS.md §1).

Expected tree (as published on Zenodo; the ``clotho_csv_files/`` and ``clotho_audio_files/``
sub-folders of the aac-datasets layout are also accepted)::

    root/
    ├── clotho_captions_development.csv   # file_name,caption_1,...,caption_5
    ├── clotho_captions_validation.csv
    ├── clotho_captions_evaluation.csv
    ├── clotho_metadata_{split}.csv       # optional: file_name,keywords,sound_id,...
    ├── development/*.wav                 # 44.1 kHz mono, 15-30 s
    ├── validation/*.wav
    └── evaluation/*.wav

Card: splits development/validation/evaluation, mapped to train/val/test (the original
name is kept in ``clip.meta["clotho_split"]``); 3839/1045/1045 clips, 5 captions each.
Clip id = ``file_name``. Keywords of the optional metadata CSV (``;``-separated) become
``clip.tags``; its other columns go to ``clip.meta``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from soundseek.data.formats._common import CorpusBuilder, check_root, check_splits, read_csv
from soundseek.data.types import Clip, Corpus

SPLITS: dict[str, str] = {"development": "train", "validation": "val", "evaluation": "test"}
SIZES: dict[str, int] = {"development": 3839, "validation": 1045, "evaluation": 1045}
N_CAPTIONS = 5
CAPTION_COLUMNS: tuple[str, ...] = tuple(f"caption_{i}" for i in range(1, N_CAPTIONS + 1))
CITATION = """@inproceedings{drossos2020clotho,
  title={Clotho: an Audio Captioning Dataset},
  author={Drossos, Konstantinos and Lipping, Samuel and Virtanen, Tuomas},
  booktitle={ICASSP 2020}, pages={736--740}, year={2020}}"""


def _find(root: Path, names: Sequence[str]) -> Path | None:
    for n in names:
        if (root / n).exists():
            return root / n
    return None


def load_clotho(root: Path | str, splits: Sequence[str] | str | None = None) -> Corpus:
    """Read Clotho v2 captions and audio paths.

    Args:
        root: dataset folder (see the module docstring for the tree).
        splits: original names (``development``/``validation``/``evaluation``) or mapped ones
            (``train``/``val``/``test``); None = every split whose captions CSV exists.

    Raises:
        FileNotFoundError: ``root`` is missing, a requested split's CSV is missing, or no
            captions CSV is found at all.
    """
    root = check_root(root, "Clotho")
    inverse = {v: k for k, v in SPLITS.items()}
    wanted = check_splits(splits, list(SPLITS), aliases=inverse, fmt="Clotho")
    b = CorpusBuilder("clotho")
    found = 0
    for orig in wanted:
        csv_name = f"clotho_captions_{orig}.csv"
        csv_path = _find(root, [csv_name, f"clotho_csv_files/{csv_name}"])
        if csv_path is None:
            if splits is not None:
                raise FileNotFoundError(f"Clotho split {orig!r}: {root / csv_name} not found")
            continue
        found += 1
        audio_dir = _find(root, [orig, f"clotho_audio_files/{orig}"]) or root / orig
        meta = _read_metadata(root, orig, b)
        rows = read_csv(csv_path, b, ("file_name",) + CAPTION_COLUMNS)
        for line, row in rows or []:
            where = f"{csv_path}:{line}"
            fname = row["file_name"].strip()
            if not fname:
                b.error(where, "empty file_name; row skipped")
                continue
            caps = b.clean_captions([row[c] for c in CAPTION_COLUMNS], where)
            m = dict(meta.get(fname, {}))
            tags = [k.strip() for k in m.pop("keywords", "").split(";") if k.strip()]
            m["clotho_split"] = orig
            b.add(Clip(fname, audio_dir / fname, caps, SPLITS[orig], tags, None, m), where)
    if found == 0:
        raise FileNotFoundError(f"No clotho_captions_{{development,validation,evaluation}}.csv in {root}")
    return b.corpus()


def _read_metadata(root: Path, orig: str, b: CorpusBuilder) -> dict[str, dict[str, str]]:
    name = f"clotho_metadata_{orig}.csv"
    path = _find(root, [name, f"clotho_csv_files/{name}"])
    if path is None:
        return {}
    rows = read_csv(path, b, ("file_name",))
    return {r["file_name"].strip(): {k: v.strip() for k, v in r.items() if k != "file_name"} for _, r in rows or []}
