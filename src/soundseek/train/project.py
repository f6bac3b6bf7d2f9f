"""Fit an ensemble's projection (``soundseek ensemble ... --project P``) on training data.

The concatenated vectors of every clip and caption of a split (``train`` by default) of the
ensemble's own corpus, read from the feature cache, are stacked and their leading right
singular vectors kept (:func:`soundseek.models.ensemble.fit_projection`).
"""
from __future__ import annotations

from typing import Sequence

import torch


@torch.no_grad()
def split_vectors(payload: dict, split: str = "train", overrides: Sequence[str] = (),
                  progress: bool = True) -> torch.Tensor:
    """(n_clips + n_captions, sum_k d_k) concatenated unit vectors of ``split`` of the ensemble
    checkpoint dict ``payload``'s corpus (``overrides`` applied to its recipe)."""
    from soundseek.config import apply_overrides
    from soundseek.data.training import load_training_corpus
    from soundseek.models.factory import model_from_checkpoint
    from soundseek.train.data import prepare
    from soundseek.train.evaluate import encode_view

    model = model_from_checkpoint({**payload, "version": 2}, where="ensemble")
    cfg = apply_overrides(model.cfg, list(overrides))
    data = prepare(cfg, corpus=load_training_corpus(cfg), progress=progress,
                   towers=(model.audio_encoder, model.text_encoder))
    text, audio = encode_view(model, data, data.view(split))
    return torch.cat([audio["emb"], text["emb"]]).float()
