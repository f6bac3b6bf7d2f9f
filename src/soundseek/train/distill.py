"""Ensemble distillation targets (Primus et al.; METHODS §7): ``soundseek distill`` averages
the logits ``score * logit_scale`` of N trained checkpoints over a corpus split and writes
them; the student's trainer looks up the (B, B) block of each batch.

File (torch, plain tensors and strings; loaded with ``weights_only=True``)::

    {"format": "soundseek-distill", "split": str, "teachers": [paths],
     "clips": [clip id, ...] (columns), "captions": [[clip id, k], ...] (rows: the k-th
     caption of that clip in the split), "logits": (n_captions, n_clips) float32}
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from soundseek.fileio import atomic_write_bytes

FORMAT = "soundseek-distill"


def caption_keys(view) -> list[tuple[str, int]]:
    """(clip id, k) of every caption of a split view: the k-th caption of its clip."""
    seen: dict[str, int] = {}
    keys = []
    for owner in view.caption_audio:
        cid = view.clips[int(owner)].id
        keys.append((cid, seen.get(cid, 0)))
        seen[cid] = seen.get(cid, 0) + 1
    return keys


@torch.no_grad()
def write_targets(checkpoints: Sequence[str | Path], out: str | Path, split: str = "train",
                  overrides: Sequence[str] = (), progress: bool = True) -> dict:
    """Average the teachers' logits over ``split`` of the first teacher's corpus (with
    ``overrides`` applied to its recipe) and write the targets file. Returns its summary."""
    from dataclasses import replace

    from soundseek.config import apply_overrides
    from soundseek.models import load
    from soundseek.data.training import load_training_corpus
    from soundseek.train.data import prepare
    from soundseek.train.evaluate import score_view

    if not checkpoints:
        raise ValueError("distill needs at least one teacher checkpoint")
    data_cfg, corpus, total, keys, clips = None, None, None, None, None
    for path in checkpoints:
        model = load(path)
        cfg = apply_overrides(model.cfg, list(overrides))
        if data_cfg is None:
            data_cfg = cfg.data
            corpus = load_training_corpus(cfg)
        cfg = replace(cfg, data=data_cfg)  # every teacher scores the same corpus
        data = prepare(cfg, corpus=corpus, progress=progress, towers=(model.audio_encoder, model.text_encoder))
        view = data.view(split)
        logits = score_view(model, data, view).double() * model.logit_scale()
        if total is None:
            total, keys, clips = logits, caption_keys(view), [c.id for c in view.clips]
        else:
            if [c.id for c in view.clips] != clips or caption_keys(view) != keys:
                raise ValueError(f"{path}: the teachers see different {split} splits (their encoders left out "
                                 "different clips); distill from teachers that decode the same clips")
            total += logits
    payload = {"format": FORMAT, "split": split, "teachers": [str(p) for p in checkpoints], "clips": clips,
               "captions": [[c, k] for c, k in keys], "logits": (total / len(checkpoints)).float().contiguous()}
    atomic_write_bytes(Path(out), lambda f: torch.save(payload, f))
    return {"teachers": len(checkpoints), "captions": len(keys), "clips": len(clips), "out": str(out)}


class Targets:
    """The teachers' logits, indexed by a split view's caption and clip positions."""

    def __init__(self, path: str | Path, view) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Distillation targets not found: {path} (write them with `soundseek distill`)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise ValueError(f"{path} is not a distillation targets file of `soundseek distill`") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise ValueError(f"{path} is not a distillation targets file (no format tag {FORMAT!r})")
        rows = {(c, int(k)): i for i, (c, k) in enumerate(obj["captions"])}
        cols = {c: j for j, c in enumerate(obj["clips"])}
        want_rows = caption_keys(view)
        missing = [k for k in want_rows if k not in rows] + [c.id for c in view.clips if c.id not in cols]
        if missing:
            raise ValueError(f"{path}: {len(missing)} caption(s)/clip(s) of the {view.name} split have no teacher "
                             f"targets (e.g. {missing[:3]}); rerun `soundseek distill` on this corpus")
        self.logits = obj["logits"]
        self.row = np.array([rows[k] for k in want_rows], dtype=np.int64)  # caption position -> row
        self.col = np.array([cols[c.id] for c in view.clips], dtype=np.int64)  # clip position -> column

    def block(self, caption_positions: np.ndarray, clip_positions: np.ndarray) -> torch.Tensor:
        """(B, B) teacher logits of captions ``caption_positions`` vs clips ``clip_positions``."""
        r = torch.as_tensor(self.row[caption_positions])
        c = torch.as_tensor(self.col[clip_positions])
        return self.logits[r][:, c]
