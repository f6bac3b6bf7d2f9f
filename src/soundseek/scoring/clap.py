"""CLAP's own scoring (Wu et al. 2023, LAION-CLAP; Hugging Face ``ClapModel``) on CLAP embeddings,
as a scorer, so a pretrained CLAP evaluates and searches through the same code as a trained model."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import Rep, Scorer


class ClapScorer(Scorer):
    """CLAP's own scoring on CLAP embeddings: no parameters besides the logit scales.

    ``encode_text``: the sentence vector (``get_text_features``), L2-normalised.
    ``encode_audio``: frames are window embeddings (``ClapAudioEncoder(output="embedding")``);
    each is normalised, the valid ones averaged and the mean normalised — for one window exactly
    ``get_audio_features``. ``score``: cosine. ``logit_scale_a`` / ``logit_scale_t`` are the
    checkpoint's (log) scales of ``logits_per_audio`` / ``logits_per_text``.
    """

    name = "clap"

    def __init__(self, audio_dim: int, text_dim: int, embed_dim: int | None = None,
                 logit_scale_a: float = math.log(1 / 0.07), logit_scale_t: float = math.log(1 / 0.07)) -> None:
        super().__init__(audio_dim, text_dim, embed_dim or audio_dim)
        if audio_dim != text_dim:
            raise ValueError(f"clap scorer needs audio_dim == text_dim (shared CLAP space), got {audio_dim}, {text_dim}")
        self.logit_scale_a = nn.Parameter(torch.tensor(float(logit_scale_a)), requires_grad=False)
        self.logit_scale_t = nn.Parameter(torch.tensor(float(logit_scale_t)), requires_grad=False)

    def encode_text(self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None) -> Rep:
        tokens, token_mask, sentence = self.check_text(tokens, token_mask, sentence)
        if sentence is None:
            raise ValueError("clap scorer needs the sentence vector (get_text_features)")
        return {"emb": F.normalize(sentence, dim=-1)}

    def encode_audio(self, frames: Tensor, frame_mask: Tensor | None) -> Rep:
        frames, mask = self.check_audio(frames, frame_mask)
        unit = F.normalize(frames, dim=-1) * mask[..., None].to(frames.dtype)
        return {"emb": F.normalize(unit.sum(dim=1), dim=-1)}

    def score(self, text: Rep, audio: Rep, chunk: int | None = None) -> Tensor:
        return text["emb"] @ audio["emb"].T

    def score_pairs(self, text: Rep, audio: Rep) -> Tensor:
        self._check_pairs(text, audio)
        return (text["emb"] * audio["emb"]).sum(-1)
