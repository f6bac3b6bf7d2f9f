"""ESC-50 reader (METHODS.md §1), for zero-shot classification and as a captioned corpus.

Expected tree (the GitHub release)::

    root/
    ├── meta/esc50.csv      # filename,fold,target,category,esc10,src_file,take
    └── audio/*.wav         # 2000 clips, 5 s, 44.1 kHz mono

Card: 50 classes x 40 clips, 5 folds of 400 clips; split = ``"fold1"``..``"fold5"``.
Clip id = ``filename``; caption = ``category`` with ``_`` -> space (``"dog"``,
``"crackling fire"``); ``clip.tags = [category]``; ``clip.meta`` holds ``fold`` (int),
``target`` (int), ``category``, ``esc10`` (bool), ``src_file``, ``take``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from soundseek.data.formats._common import CorpusBuilder, check_root, check_splits, read_csv
from soundseek.data.types import Clip, Corpus

COLUMNS: tuple[str, ...] = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
N_FOLDS = 5
SPLITS: tuple[str, ...] = tuple(f"fold{i}" for i in range(1, N_FOLDS + 1))
SIZES: dict[str, int] = {s: 400 for s in SPLITS}
N_CLASSES = 50
CLIP_SECONDS = 5.0
CITATION = """@inproceedings{piczak2015esc,
  title={{ESC}: Dataset for Environmental Sound Classification},
  author={Piczak, Karol J.}, booktitle={ACM Multimedia 2015}, pages={1015--1018}, year={2015}}"""


def load_esc50(root: Path | str, splits: Sequence[str] | str | None = None) -> Corpus:
    """Read ESC-50.

    Args:
        root: dataset folder (see the module docstring).
        splits: subset of ``fold1``..``fold5`` (ints 1..5 also accepted); None = all.

    Raises:
        FileNotFoundError: ``root`` or ``meta/esc50.csv`` missing.
    """
    root = check_root(root, "ESC-50")
    if splits is not None and not isinstance(splits, str):
        splits = [f"fold{s}" if isinstance(s, int) else s for s in splits]
    wanted = set(check_splits(splits, SPLITS, fmt="ESC-50"))
    csv_path = root / "meta" / "esc50.csv"
    if not csv_path.is_file():
        raise FileNotFoundError(f"ESC-50 metadata not found: {csv_path}")
    b = CorpusBuilder("esc50")
    for line, row in read_csv(csv_path, b, COLUMNS) or []:
        where = f"{csv_path}:{line}"
        fname = row["filename"].strip()
        try:
            fold, target = int(row["fold"]), int(row["target"])
        except ValueError:
            b.error(where, f"fold/target must be integers, got {row['fold']!r}/{row['target']!r}; row skipped")
            continue
        split = f"fold{fold}"
        if split not in SPLITS:
            b.error(where, f"fold {fold} out of range 1..{N_FOLDS}; row skipped")
            continue
        if split not in wanted:
            continue
        category = row["category"].strip()
        caps = b.clean_captions([category.replace("_", " ")], where)
        meta = {"fold": fold, "target": target, "category": category,
                "esc10": row["esc10"].strip().lower() == "true", "src_file": row["src_file"].strip(),
                "take": row["take"].strip()}
        b.add(Clip(fname, root / "audio" / fname, caps, split, [category] if category else [], None, meta), where)
    return b.corpus()
