"""AudioCaps reader (METHODS.md §1).

Expected tree::

    root/
    ├── train.csv          # audiocap_id,youtube_id,start_time,caption  (one row per caption)
    ├── val.csv
    ├── test.csv
    └── <audio>            # files named <youtube_id>.<ext>, 10 s each

Audio search order, for each clip of split ``s`` (first hit wins; extensions tried in the
order wav, flac, ogg, oga, mp3, aiff, aif):

1. ``root/s/<youtube_id>.<ext>``
2. ``root/audio/s/<youtube_id>.<ext>``
3. ``root/<youtube_id>.<ext>``
4. ``root/audio/<youtube_id>.<ext>``

and then the same four folders with the AudioSet-style name ``Y<youtube_id>.<ext>``.
YouTube ids may start with ``-`` (e.g. ``-0RWZT-miFs``): files are found by listing the
folders, never through a shell or a command line, so such names are safe.

Card: splits train/val/test with 49274/494/957 clips (1 caption per train clip, 5 per
val/test clip). Rows are grouped by ``youtube_id`` (the clip id); ``clip.meta`` holds
``start_time`` and the ``audiocap_ids`` of its captions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from soundseek.data.formats._common import CorpusBuilder, DirIndex, check_root, check_splits, read_csv
from soundseek.data.types import Clip, Corpus

SPLITS: tuple[str, ...] = ("train", "val", "test")
SIZES: dict[str, int] = {"train": 49274, "val": 494, "test": 957}
COLUMNS: tuple[str, ...] = ("audiocap_id", "youtube_id", "start_time", "caption")
CLIP_SECONDS = 10.0
CITATION = """@inproceedings{kim2019audiocaps,
  title={AudioCaps: Generating Captions for Audios in The Wild},
  author={Kim, Chris Dongjoo and Kim, Byeongchang and Lee, Hyunmin and Kim, Gunhee},
  booktitle={NAACL-HLT 2019}, pages={119--132}, year={2019}}"""


def audio_dirs(root: Path, split: str) -> list[Path]:
    """The folders searched for a clip of ``split``, in order (see the module docstring)."""
    return [root / split, root / "audio" / split, root, root / "audio"]


def load_audiocaps(root: Path | str, splits: Sequence[str] | str | None = None) -> Corpus:
    """Read AudioCaps CSVs, group captions by youtube id, find each clip's audio file.

    Args:
        root: dataset folder (see the module docstring).
        splits: subset of ``train``/``val``/``test``; None = every split whose CSV exists.

    Raises:
        FileNotFoundError: ``root`` missing, a requested split's CSV missing, or no CSV at all.
    """
    root = check_root(root, "AudioCaps")
    wanted = check_splits(splits, SPLITS, fmt="AudioCaps")
    b = CorpusBuilder("audiocaps")
    index = DirIndex()
    found = 0
    for split in wanted:
        csv_path = root / f"{split}.csv"
        if not csv_path.exists():
            if splits is not None:
                raise FileNotFoundError(f"AudioCaps split {split!r}: {csv_path} not found")
            continue
        found += 1
        groups: dict[str, dict] = {}  # youtube_id -> {captions, ids, start, where}
        for line, row in read_csv(csv_path, b, COLUMNS) or []:
            where = f"{csv_path}:{line}"
            yid = row["youtube_id"].strip()
            if not yid:
                b.error(where, "empty youtube_id; row skipped")
                continue
            g = groups.setdefault(yid, {"captions": [], "ids": [], "start": row["start_time"].strip(), "where": where})
            if row["start_time"].strip() != g["start"]:
                b.warning(where, f"youtube_id {yid!r} has start_time {row['start_time']!r} here but "
                          f"{g['start']!r} at {g['where']}; kept the first")
            caps = b.clean_captions([row["caption"]], where)
            g["captions"] += caps
            if caps:
                g["ids"].append(row["audiocap_id"].strip())
        dirs = audio_dirs(root, split)
        for yid, g in groups.items():
            path = index.find(yid, dirs) or index.find("Y" + yid, dirs)
            if path is None:
                b.error(g["where"], f"missing audio file for youtube_id {yid!r}: no {yid}.<audio ext> in "
                        f"{', '.join(str(d) for d in dirs)}; clip skipped")
                continue
            start = _number(g["start"])
            meta = {"start_time": start, "audiocap_ids": g["ids"]}
            b.add(Clip(yid, path, g["captions"], split, [], None, meta), g["where"])
    if found == 0:
        raise FileNotFoundError(f"No AudioCaps {{train,val,test}}.csv in {root}")
    return b.corpus()


def _number(s: str) -> float | int | str:
    try:
        f = float(s)
    except ValueError:
        return s
    return int(f) if f.is_integer() else f
