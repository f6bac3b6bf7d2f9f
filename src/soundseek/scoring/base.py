"""The Scorer interface shared by global, TAP and GPA scorers (see the project brief).

A scorer turns frozen-encoder outputs into per-caption and per-clip representations
(dicts of tensors whose leading dimension is the number of captions / clips) and scores
(caption, clip) pairs. ``score`` computes all pairs batched and chunked; ``score_pairs``
scores aligned pairs i <-> i and is the straightforward reference. Scores are similarities.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor, nn

from soundseek.registry import Registry, check_choice  # noqa: F401  (check_choice: re-exported to the scorers)

from ..pooling.basic import check_frames, masked_mean

TEXT_POOLINGS = ("sentence", "mean", "cls")
Rep = dict[str, Tensor]


def rep_size(rep: Rep, what: str) -> int:
    """Leading dimension shared by every tensor of a representation dict."""
    if not isinstance(rep, dict) or not rep:
        raise ValueError(f"{what} representation must be a non-empty dict of tensors, got {type(rep).__name__}")
    sizes = {k: v.shape[0] for k, v in rep.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{what} representation has inconsistent leading dimensions: {sizes}")
    return next(iter(sizes.values()))


def require(rep: Rep, keys: tuple[str, ...], what: str, scorer: str) -> None:
    missing = [k for k in keys if k not in rep]
    if missing:
        raise ValueError(
            f"{scorer}: {what} representation lacks {missing}; pass the output of {scorer}.encode_{what}"
        )


def select(rep: Rep, index: Tensor | slice) -> Rep:
    """Rows ``index`` of every tensor of a representation dict."""
    return {k: v[index] for k, v in rep.items()}


def pad_to(t: Tensor, shape: tuple[int, ...]) -> Tensor:
    """``t`` zero-padded (False for masks) at the end of every dimension up to ``shape``."""
    if tuple(t.shape) == tuple(shape):
        return t
    out = t.new_zeros(shape)
    out[tuple(slice(0, n) for n in t.shape)] = t
    return out


def cat_reps(parts: list[Rep]) -> Rep:
    """Representation dicts of consecutive batches joined along the leading dimension.

    Batches padded to different lengths (frame- or token-level tensors with their mask)
    are zero-padded to the longest first; padded positions are masked out, so the scores
    are unchanged. Scorers whose tensors have more structure than "pad at the end"
    override :meth:`Scorer.cat_reps`."""
    if not parts:
        raise ValueError("cat_reps needs at least one representation dict")
    out = {}
    for k in parts[0]:
        ts = [p[k] for p in parts]
        if len({t.dim() for t in ts}) != 1:
            raise ValueError(f"representation key {k!r} has tensors of different ranks: {[t.dim() for t in ts]}")
        tail = tuple(max(t.shape[d] for t in ts) for d in range(1, ts[0].dim()))
        out[k] = torch.cat([pad_to(t, (t.shape[0], *tail)) for t in ts])
    return out


def all_pairs(text: Rep, audio: Rep) -> tuple[Rep, Rep]:
    """Aligned dicts enumerating every (caption i, clip j) pair in row-major order, so that
    ``score_pairs(*all_pairs(t, a)).view(Bt, Ba)`` is the full score matrix (reference)."""
    bt, ba = rep_size(text, "text"), rep_size(audio, "audio")
    ti = torch.arange(bt).repeat_interleave(ba)
    ai = torch.arange(ba).repeat(bt)
    return select(text, ti), select(audio, ai)


def caption_chunks(bt: int, chunk: int | None, bytes_per_caption: int, max_bytes: int) -> Iterator[slice]:
    """Slices of captions whose working memory stays under ``max_bytes`` (or of size ``chunk``)."""
    if chunk is not None and int(chunk) <= 0:
        raise ValueError(f"chunk must be a positive integer or None, got {chunk!r}")
    size = int(chunk) if chunk else max(1, max_bytes // max(1, bytes_per_caption))
    for s in range(0, bt, size):
        yield slice(s, min(bt, s + size))


def text_vector(tokens: Tensor | None, mask: Tensor | None, sentence: Tensor | None, how: str) -> Tensor:
    """Caption vector (B, Dt): the given sentence vector, the masked token mean, or token 0."""
    if how == "sentence":
        if sentence is None:
            raise ValueError("text_pooling='sentence' needs the sentence vector (B, Dt)")
        return sentence
    if tokens is None:
        raise ValueError(f"text_pooling={how!r} needs the token features (B, L, Dt)")
    if how == "mean":
        return masked_mean(tokens, mask)
    return tokens[:, 0]  # "cls": first token


SCORERS: Registry = Registry("scorer")
"""Scorers by name (filled by :mod:`soundseek.scoring`)."""

WIDTHS = ("audio_dim", "text_dim", "embed_dim")
"""Constructor parameters of every scorer that the model passes itself (not recipe options)."""


class Scorer(nn.Module):
    """Base class: input checks and the reference all-pairs path.

    Subclasses implement ``encode_text``, ``encode_audio``, ``score`` and ``score_pairs``.
    ``max_chunk_bytes`` bounds the working memory of one caption chunk in ``score``.
    """

    name = "scorer"
    max_chunk_bytes: int = 256 * 2**20

    def __init__(self, audio_dim: int, text_dim: int, embed_dim: int) -> None:
        super().__init__()
        for n, v in (("audio_dim", audio_dim), ("text_dim", text_dim), ("embed_dim", embed_dim)):
            if isinstance(v, bool) or int(v) <= 0:
                raise ValueError(f"{n} must be a positive integer, got {v!r}")
        self.audio_dim, self.text_dim, self.embed_dim = int(audio_dim), int(text_dim), int(embed_dim)

    def cat_reps(self, parts: list[Rep]) -> Rep:
        """Join the representations of consecutive batches (see :func:`cat_reps`)."""
        return cat_reps(parts)

    # -- input checks -------------------------------------------------------------------
    def check_text(
        self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        """Validate (tokens (B, L, Dt), token_mask (B, L), sentence (B, Dt)); any may be None."""
        if tokens is not None:
            token_mask = check_frames(tokens, token_mask, "text tokens")
            if tokens.shape[-1] != self.text_dim:
                raise ValueError(
                    f"{self.name}: text tokens have D={tokens.shape[-1]}, scorer was built with text_dim={self.text_dim}"
                )
        if sentence is not None:
            if sentence.dim() != 2 or sentence.shape[-1] != self.text_dim:
                raise ValueError(
                    f"{self.name}: sentence must have shape (B, text_dim={self.text_dim}), got {tuple(sentence.shape)}"
                )
            if tokens is not None and sentence.shape[0] != tokens.shape[0]:
                raise ValueError(f"{self.name}: {sentence.shape[0]} sentence vectors for {tokens.shape[0]} token rows")
        if tokens is None and sentence is None:
            raise ValueError(f"{self.name}: encode_text needs tokens or a sentence vector")
        return tokens, token_mask, sentence

    def check_audio(self, frames: Tensor, frame_mask: Tensor | None) -> tuple[Tensor, Tensor]:
        """Validate frames (B, T, Da) / frame_mask (B, T); returns frames with padding zeroed."""
        mask = check_frames(frames, frame_mask, "audio frames")
        if frames.shape[-1] != self.audio_dim:
            raise ValueError(
                f"{self.name}: audio frames have D={frames.shape[-1]}, scorer was built with audio_dim={self.audio_dim}"
            )
        return frames.masked_fill(~mask.unsqueeze(-1), 0.0), mask

    # -- interface ------------------------------------------------------------------------
    def encode_text(self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None) -> Rep:
        raise NotImplementedError

    def encode_audio(self, frames: Tensor, frame_mask: Tensor | None) -> Rep:
        raise NotImplementedError

    def score(self, text: Rep, audio: Rep, chunk: int | None = None) -> Tensor:
        raise NotImplementedError

    def score_pairs(self, text: Rep, audio: Rep) -> Tensor:
        raise NotImplementedError

    def ot_cost(self, scores: Tensor) -> Tensor:
        """Transport cost of a (Bt, Ba) score matrix for OT-plan retrieval (METHODS §8).

        Scores of this scorer are cosines of unit vectors, so the cost is their Euclidean
        distance ``sqrt(2 - 2 s)``. Scorers whose scores are negated distances override this.
        """
        return torch.sqrt(torch.clamp(2 - 2 * scores, min=0))

    def forward(
        self,
        tokens: Tensor | None,
        token_mask: Tensor | None,
        sentence: Tensor | None,
        frames: Tensor,
        frame_mask: Tensor | None,
    ) -> Tensor:
        """Encode both sides and return the (Bt, Ba) score matrix (training convenience)."""
        return self.score(self.encode_text(tokens, token_mask, sentence), self.encode_audio(frames, frame_mask))

    def score_reference(self, text: Rep, audio: Rep) -> Tensor:
        """(Bt, Ba) via ``score_pairs`` on every pair (slow, memory O(Bt*Ba); for tests)."""
        bt, ba = rep_size(text, "text"), rep_size(audio, "audio")
        return self.score_pairs(*all_pairs(text, audio)).view(bt, ba)

    def _check_pairs(self, text: Rep, audio: Rep) -> int:
        n, m = rep_size(text, "text"), rep_size(audio, "audio")
        if n != m:
            raise ValueError(f"{self.name}.score_pairs needs aligned pairs, got {n} captions and {m} clips")
        return n
