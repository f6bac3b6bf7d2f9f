"""An ensemble of global cosine scorers that is itself a dual encoder.

Each member maps a clip and a caption to unit vectors of its own space; the ensemble's vectors
are the members' vectors concatenated and divided by ``sqrt(K)``, so they are unit vectors too
and their inner product is the mean of the members' cosines::

    [t_1, ..., t_K] / sqrt(K) . [a_1, ..., a_K] / sqrt(K) = (1 / K) sum_k t_k . a_k

Averaging the scores of independently trained models is the usual ensemble; written this way it
still indexes and searches like one model (an inner-product index of width ``sum_k d_k``).

With ``project = p > 0`` the concatenated vector ``v`` is mapped to ``normalize(P v)`` by a fixed
(p, sum_k d_k) matrix ``P`` with orthonormal rows, fitted once on training clips and captions
(:func:`soundseek.models.ensemble.fit_projection`: the leading right singular vectors of their
stacked concatenated vectors, so ``P^T P`` keeps most of what their inner products use). The
index is then p wide instead of ``sum_k d_k``; scores approximate the mean cosine.
Members are trained separately and joined with :func:`soundseek.models.ensemble.combine`
(``soundseek ensemble``); training the ensemble scorer itself trains every member on the mean
score, which is a different thing.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..config import ConfigError
from .base import SCORERS, WIDTHS, Rep, Scorer, caption_chunks, require

MEMBER_KEYS = ("scorer", "embed_dim", "options")
MAX_MEMBERS = 64


class EnsembleScorer(Scorer):
    """Mean of the cosines of K global scorers, as one dual encoder.

    Args:
        audio_dim, text_dim: widths of the (shared) towers' outputs.
        embed_dim: width of the ensemble's vectors, the sum of the members' ``embed_dim``.
        members: one dict per member, ``{"scorer": "global", "embed_dim": d_k, "options": {...}}``
            (a member recipe's ``model`` section). Members must be global scorers with cosine
            similarity: only their scores are inner products of unit vectors.
        project: 0 (the concatenated vectors) or the width p of projected vectors; then
            ``embed_dim`` is p and the buffer ``projection`` (p, sum_k d_k) comes from the checkpoint.

    Representations: ``{"emb": (B, embed_dim)}``, unit vectors.
    """

    name = "ensemble"

    def __init__(self, audio_dim: int, text_dim: int, embed_dim: int,
                 members: Sequence[dict[str, Any]] = (), project: int = 0) -> None:
        super().__init__(audio_dim, text_dim, embed_dim)
        from .global_ import GlobalScorer

        if isinstance(members, (str, bytes)) or not isinstance(members, Sequence) or len(members) < 2:
            raise ConfigError("an ensemble needs a list of at least 2 members")
        if len(members) > MAX_MEMBERS:
            raise ConfigError(f"an ensemble has at most {MAX_MEMBERS} members, got {len(members)}")
        built = []
        for i, m in enumerate(members):
            if not isinstance(m, dict):
                raise ConfigError(f"ensemble member {i} must be a dict with keys {', '.join(MEMBER_KEYS)}")
            unknown = sorted(set(m) - set(MEMBER_KEYS))
            if unknown:
                raise ConfigError(f"Unknown key {unknown[0]!r} in ensemble member {i}. Valid: {', '.join(MEMBER_KEYS)}")
            name, opts = m.get("scorer", "global"), dict(m.get("options") or {})
            cls = SCORERS.get(name)
            if cls is not GlobalScorer or opts.get("similarity", "cosine") != "cosine":
                raise ConfigError(f"ensemble member {i}: only global scorers with cosine similarity can be "
                                  f"ensembled as one dual encoder, got scorer {name!r}")
            SCORERS.check_options(name, opts, f"ensemble member {i} options", reserved=WIDTHS)
            built.append(cls(audio_dim=audio_dim, text_dim=text_dim, embed_dim=int(m["embed_dim"]), **opts))
        total = sum(s.embed_dim for s in built)
        if isinstance(project, bool) or not isinstance(project, int) or not 0 <= project <= total:
            raise ConfigError(f"ensemble project must be 0 (no projection) or a width up to {total}, got {project!r}")
        want = project or total
        if want != self.embed_dim:
            what = "its project width" if project else "the sum of its members'"
            raise ConfigError(f"the ensemble's embed_dim must be {what} ({want}), got {self.embed_dim}")
        self.members = nn.ModuleList(built)
        self.scale = 1.0 / math.sqrt(len(built))
        self.concat_dim = total
        if project:
            self.register_buffer("projection", torch.zeros(project, total))

    def _out(self, embs: list[Tensor]) -> Rep:
        """The members' unit vectors joined (unit vectors), projected when the ensemble has a projection."""
        v = torch.cat(embs, dim=-1) * self.scale
        if hasattr(self, "projection"):
            v = nn.functional.normalize(v @ self.projection.T.to(v.dtype), dim=-1)
        return {"emb": v}

    def encode_text(self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None) -> Rep:
        return self._out([m.encode_text(tokens, token_mask, sentence)["emb"] for m in self.members])

    def encode_audio(self, frames: Tensor, frame_mask: Tensor | None) -> Rep:
        return self._out([m.encode_audio(frames, frame_mask)["emb"] for m in self.members])

    def score(self, text: Rep, audio: Rep, chunk: int | None = None) -> Tensor:
        require(text, ("emb",), "text", self.name)
        require(audio, ("emb",), "audio", self.name)
        t, a = text["emb"], audio["emb"]
        if t.shape[-1] != self.embed_dim or a.shape[-1] != self.embed_dim:
            raise ValueError(f"{self.name}: expected {self.embed_dim}-d embeddings, got text {t.shape[-1]}, "
                             f"audio {a.shape[-1]}")
        chunks = list(caption_chunks(t.shape[0], chunk, a.shape[0] * t.element_size(), self.max_chunk_bytes))
        return torch.cat([t[s] @ a.T for s in chunks], dim=0)

    def score_pairs(self, text: Rep, audio: Rep) -> Tensor:
        require(text, ("emb",), "text", self.name)
        require(audio, ("emb",), "audio", self.name)
        self._check_pairs(text, audio)
        return (text["emb"] * audio["emb"]).sum(-1)
