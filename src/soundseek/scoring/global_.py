"""Global (dual-encoder) scorer: pooled clip vector and caption vector, each projected by an
MLP head to d and L2-normalised; score = cosine, or minus a learned Mahalanobis distance
(m-LTM, seed 003). METHODS §3 (projection), §4 (pooling), §8 (inference)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..pooling import POOLING, masked_max
from .base import TEXT_POOLINGS, Rep, Scorer, caption_chunks, check_choice, require, text_vector
from .heads import ProjectionHead, build_head

SIMILARITIES = ("cosine", "mahalanobis")
CATEGORIES = ("aisfx-probs", "aisfx-hidden")


class GlobalScorer(Scorer):
    """Text-agnostic pooling + projection heads; pair scores from embeddings only.

    Args:
        audio_dim: Da of the audio frames.
        text_dim: Dt of the text tokens / sentence vector.
        embed_dim: d, shared space size.
        pooling: name in ``soundseek.pooling.POOLING`` (mean, max, meanmax, attention, netrvlad).
        text_pooling: "sentence" (the encoder's sentence vector), "mean" (masked token mean)
            or "cls" (first token).
        hidden: hidden width of the MLP heads (default d).
        dropout: dropout inside the heads (training only).
        similarity: "cosine" (``text_emb @ audio_emb.T``) or "mahalanobis" (minus the
            distance of ``soundseek.scoring.mahalanobis.MahalanobisMetric`` between the
            normalised embeddings).
        pooling_options: extra keyword arguments of the pooling (e.g. ``n_clusters``).
        metric_options: extra keyword arguments of ``MahalanobisMetric`` (e.g. ``parametrization``).
        categories: None, or category features appended to the pooled vector before the audio
            head: ``"aisfx-probs"`` (the class probabilities of aisfx's nine frozen classifier
            heads on the clip's max-pooled frames, 378-d) or ``"aisfx-hidden"`` (their last hidden
            layers, 1152-d); see ``soundseek.encoders.aisfx.AisfxCategories``. Needs 512-d
            aisfx frames.
        text_head: ``"mlp"`` (default), ``"linear"``, or ``"identity"`` (the text encoder's own
            space is the shared space, so ``embed_dim`` must equal its width: the audio head
            learns to land where the frozen text encoder puts the words, which keeps words never
            seen in training close to those it resembles).

    Representations: encode_text -> {"emb": (Bt, d)}, encode_audio -> {"emb": (Ba, d)},
    both L2-normalised.
    """

    name = "global"

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        embed_dim: int = 1024,
        pooling: str = "meanmax",
        text_pooling: str = "sentence",
        hidden: int | None = None,
        dropout: float = 0.0,
        similarity: str = "cosine",
        pooling_options: dict[str, Any] | None = None,
        metric_options: dict[str, Any] | None = None,
        categories: str | None = None,
        text_head: str = "mlp",
    ) -> None:
        super().__init__(audio_dim, text_dim, embed_dim)
        check_choice("text_pooling", text_pooling, TEXT_POOLINGS)
        check_choice("similarity", similarity, SIMILARITIES)
        self.text_pooling, self.similarity = text_pooling, similarity
        self.pool = POOLING.get(pooling)(self.audio_dim, **(pooling_options or {}))
        self.categories = None
        if categories is not None:
            check_choice("categories", categories, CATEGORIES)
            from ..encoders.aisfx import AisfxCategories

            self.categories = AisfxCategories.from_pretrained(output=categories.split("-", 1)[1])
            if self.audio_dim != self.categories.in_dim:
                raise ValueError(f"categories={categories!r} needs {self.categories.in_dim}-d aisfx frames, "
                                 f"got audio_dim={self.audio_dim}")
        extra = 0 if self.categories is None else self.categories.out_dim
        self.audio_head = ProjectionHead(self.pool.out_dim + extra, self.embed_dim, hidden, dropout)
        self.text_head = build_head(text_head, self.text_dim, self.embed_dim, hidden, dropout)
        self.metric = None
        if similarity == "mahalanobis":
            from .mahalanobis import MahalanobisMetric

            self.metric = MahalanobisMetric(self.embed_dim, **(metric_options or {}))
        elif metric_options:
            raise ValueError("metric_options is only used with similarity='mahalanobis'")

    def encode_text(self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None) -> Rep:
        tokens, token_mask, sentence = self.check_text(tokens, token_mask, sentence)
        return {"emb": self.text_head(text_vector(tokens, token_mask, sentence, self.text_pooling))}

    def encode_audio(self, frames: Tensor, frame_mask: Tensor | None) -> Rep:
        frames, mask = self.check_audio(frames, frame_mask)
        pooled = self.pool(frames, mask)
        if self.categories is not None:  # aisfx's clip embedding is the max over frames
            pooled = torch.cat([pooled, self.categories(masked_max(frames, mask))], dim=-1)
        return {"emb": self.audio_head(pooled)}  # (Ba, d)

    def _block(self, t: Tensor, a: Tensor) -> Tensor:
        if self.metric is None:
            return t @ a.T
        return -self.metric.pairwise_distance(t, a)

    def score(self, text: Rep, audio: Rep, chunk: int | None = None) -> Tensor:
        require(text, ("emb",), "text", self.name)
        require(audio, ("emb",), "audio", self.name)
        t, a = text["emb"], audio["emb"]  # (Bt, d), (Ba, d)
        if t.shape[-1] != a.shape[-1]:
            raise ValueError(f"{self.name}: text emb has d={t.shape[-1]}, audio emb d={a.shape[-1]}")
        per_caption = a.shape[0] * t.element_size() * (1 if self.metric is None else 4)
        chunks = list(caption_chunks(t.shape[0], chunk, per_caption, self.max_chunk_bytes))
        if len(chunks) == 1:
            return self._block(t, a)
        return torch.cat([self._block(t[s], a) for s in chunks], dim=0)

    def ot_cost(self, scores: Tensor) -> Tensor:
        """Cosine: ``sqrt(2 - 2 s)``; Mahalanobis: the distance itself (``-s``)."""
        return super().ot_cost(scores) if self.metric is None else -scores

    def score_pairs(self, text: Rep, audio: Rep) -> Tensor:
        require(text, ("emb",), "text", self.name)
        require(audio, ("emb",), "audio", self.name)
        self._check_pairs(text, audio)
        t, a = text["emb"], audio["emb"]
        if self.metric is None:
            return (t * a).sum(-1)
        return -self.metric.paired_distance(t, a)
