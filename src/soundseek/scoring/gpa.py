"""GPA: global + prototype alignment scorer (Xie et al., Interspeech 2024 = seed 000; METHODS §5).

Prototypes (eq 1): with ``f = ReLU(Linear(D -> K))``, ``p_k = sum_j x_j f(x_j)_k`` over valid
positions j; the (K+1)-th prototype is the sentence vector ([CLS] / mean, ``text_pooling``)
for text and the mean+max pooled frames for audio. Prototypes go through an MLP head to d and
are L2-normalised. The attention generator (ablation) uses K learned queries attending over
the sequence (values = the features), ``p_k = sum_j softmax_j(q_k . W x_j / sqrt(D')) x_j``.
Global features: the sentence vector / mean+max pooled frames through separate MLP heads.

Scores: ``s_g = cos(global audio, global text)``; ``s_p[i, j] = cos(audio proto i, text proto j)``
((K+1) x (K+1), rows i audio); ``R = global_weight * s_g + s'_p`` (eq 9), with s'_p by
``aggregation``:
  * "lass" (eqs 2-8): see :func:`lass`;
  * "softmax": the same two-step weighting without L_a / L_t (w = softmax(s) used directly);
  * "mean": every weight uniform, i.e. ``s'_p = 2 * mean(s_p)`` (s'_a + s'_t, same scale as LASS).
L_a, L_t are ``Linear(K+1 -> K+1)`` initialised to the identity (the paper gives no init).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..pooling.basic import masked_max, masked_mean
from .base import TEXT_POOLINGS, Rep, Scorer, caption_chunks, check_choice, require, text_vector
from .heads import ProjectionHead

GENERATORS = ("mask", "attention")
AGGREGATIONS = ("lass", "mean", "softmax")


class PrototypeGenerator(nn.Module):
    """K prototypes (B, K, D) from a masked sequence (B, L, D) (eq 1 or the attention ablation).
    Padding never contributes; a row without valid positions gives zero prototypes."""

    def __init__(self, dim: int, n_prototypes: int, kind: str = "mask") -> None:
        super().__init__()
        check_choice("generator", kind, GENERATORS)
        self.kind, self.k = kind, int(n_prototypes)
        if kind == "mask":
            self.f_mask = nn.Linear(dim, self.k)
        else:
            self.attn_dim = min(dim, 256)
            self.key = nn.Linear(dim, self.attn_dim)
            self.queries = nn.Parameter(torch.randn(self.k, self.attn_dim) / math.sqrt(self.attn_dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        m = mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        if self.kind == "mask":
            w = torch.relu(self.f_mask(x)) * m  # (B, L, K)
        else:
            logits = self.key(x) @ self.queries.T / math.sqrt(self.attn_dim)  # (B, L, K)
            logits = logits.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)
            w = torch.softmax(logits, dim=1) * m
        return torch.einsum("blk,bld->bkd", w, x)


def _attend(s: Tensor, dim: int, lin: nn.Linear | None, mode: str) -> Tensor:
    """One learnable-attention step: weighted sum of ``s`` over ``dim`` (LASS eqs 2-4 / 5-7).

    w = softmax_dim(s); with LASS w = softmax_dim(lin(w)), lin acting along dim;
    returns sum_dim w * s ("mean": the plain mean; "softmax": no lin).
    """
    if mode == "mean":
        return s.mean(dim)
    w = torch.softmax(s, dim=dim)
    if mode == "lass":
        lw = torch.tensordot(lin.weight, w, dims=([1], [dim])).movedim(0, dim)  # L(w) along dim
        shape = [1] * w.dim()
        shape[dim] = -1
        w = torch.softmax(lw + lin.bias.view(shape), dim=dim)
    return (w * s).sum(dim)


def lass(
    sp: Tensor, l_a: nn.Linear | None, l_t: nn.Linear | None, mode: str = "lass", planar: bool = False
) -> Tensor:
    """s'_p from prototype similarities -> one score per pair.

    ``sp`` is (..., K+1 [audio i], K+1 [text j]) or, with ``planar=True``, (K+1 [i], K+1 [j], ...)
    (the fast layout of ``GPAScorer.score``: reductions over leading dims are vectorised).
    s_a = LA_i(s_p) with L_a -> over j; s'_a = LA_j(s_a) with L_t;
    s_t = LA_j(s_p) with L_t -> over i; s'_t = LA_i(s_t) with L_a; s'_p = s'_a + s'_t.
    """
    dim_i, dim_j, dim_next = (0, 1, 0) if planar else (-2, -1, -1)
    s_a = _attend(sp, dim_i, l_a, mode)  # indexed by text prototype j
    s_t = _attend(sp, dim_j, l_t, mode)  # indexed by audio prototype i
    return _attend(s_a, dim_next, l_t, mode) + _attend(s_t, dim_next, l_a, mode)


class GPAScorer(Scorer):
    """GPA scorer. Args: audio_dim, text_dim, embed_dim (d), n_prototypes (K, default 3),
    generator ("mask"|"attention"), aggregation ("lass"|"mean"|"softmax"), global_weight,
    text_pooling ("sentence"|"mean"|"cls": the [CLS]-like vector), hidden, dropout (heads),
    matmul_dtype (None/"float32" or "bfloat16" for the prototype GEMM of ``score``).

    Representations: {"emb": (B, d) unit global, "protos": (B, K+1, d) unit} for both sides.
    """

    name = "gpa"
    max_chunk_bytes: int = 24 * 2**20  # per caption chunk: (K+1)^2 x Ba planes, cache-sized

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        embed_dim: int = 1024,
        n_prototypes: int = 3,
        generator: str = "mask",
        aggregation: str = "lass",
        global_weight: float = 1.0,
        text_pooling: str = "sentence",
        hidden: int | None = None,
        dropout: float = 0.0,
        matmul_dtype: str | None = None,
    ) -> None:
        super().__init__(audio_dim, text_dim, embed_dim)
        check_choice("generator", generator, GENERATORS)
        check_choice("aggregation", aggregation, AGGREGATIONS)
        check_choice("text_pooling", text_pooling, TEXT_POOLINGS)
        check_choice("matmul_dtype", matmul_dtype, (None, "float32", "bfloat16"))
        if isinstance(n_prototypes, bool) or int(n_prototypes) <= 0:
            raise ValueError(f"n_prototypes must be a positive integer, got {n_prototypes!r}")
        d, k = self.embed_dim, int(n_prototypes)
        self.n_prototypes, self.aggregation, self.text_pooling = k, aggregation, text_pooling
        self.global_weight = float(global_weight)
        self.matmul_dtype = torch.bfloat16 if matmul_dtype == "bfloat16" else None
        self.text_global = ProjectionHead(self.text_dim, d, hidden, dropout)
        self.audio_global = ProjectionHead(self.audio_dim, d, hidden, dropout)
        self.text_proto = ProjectionHead(self.text_dim, d, hidden, dropout)
        self.audio_proto = ProjectionHead(self.audio_dim, d, hidden, dropout)
        self.text_gen = PrototypeGenerator(self.text_dim, k, generator)
        self.audio_gen = PrototypeGenerator(self.audio_dim, k, generator)
        self.l_a = self.l_t = None
        if aggregation == "lass":
            self.l_a, self.l_t = nn.Linear(k + 1, k + 1), nn.Linear(k + 1, k + 1)
            for lin in (self.l_a, self.l_t):
                nn.init.eye_(lin.weight)
                nn.init.zeros_(lin.bias)

    def encode_text(self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None) -> Rep:
        tokens, token_mask, sentence = self.check_text(tokens, token_mask, sentence)
        if tokens is None:
            raise ValueError(f"{self.name}: encode_text needs the token features (B, L, Dt) for the prototypes")
        tokens = tokens.masked_fill(~token_mask.unsqueeze(-1), 0.0)
        cls = text_vector(tokens, token_mask, sentence, self.text_pooling)  # (Bt, Dt)
        protos = torch.cat([self.text_gen(tokens, token_mask), cls.unsqueeze(1)], dim=1)  # (Bt, K+1, Dt)
        return {"emb": self.text_global(cls), "protos": self.text_proto(protos)}

    def encode_audio(self, frames: Tensor, frame_mask: Tensor | None) -> Rep:
        frames, mask = self.check_audio(frames, frame_mask)
        pooled = masked_mean(frames, mask) + masked_max(frames, mask)  # audio "[CLS]" (Ba, Da)
        protos = torch.cat([self.audio_gen(frames, mask), pooled.unsqueeze(1)], dim=1)
        return {"emb": self.audio_global(pooled), "protos": self.audio_proto(protos)}

    def _check_reps(self, text: Rep, audio: Rep) -> None:
        for rep, what in ((text, "text"), (audio, "audio")):
            require(rep, ("emb", "protos"), what, self.name)
            shape = tuple(rep["protos"].shape[1:])
            if shape != (self.n_prototypes + 1, self.embed_dim) or rep["emb"].shape[-1] != self.embed_dim:
                raise ValueError(
                    f"{self.name}: {what} protos must be (B, {self.n_prototypes + 1}, {self.embed_dim}) "
                    f"and emb (B, {self.embed_dim}), got {tuple(rep['protos'].shape)} / {tuple(rep['emb'].shape)}"
                )

    def score_pairs(self, text: Rep, audio: Rep) -> Tensor:
        """Aligned pairs i <-> i: R_i = w * s_g + s'_p. Returns (N,)."""
        self._check_reps(text, audio)
        self._check_pairs(text, audio)
        s_g = (text["emb"] * audio["emb"]).sum(-1)
        sp = torch.einsum("nid,njd->nij", audio["protos"], text["protos"])  # (N, K+1 audio, K+1 text)
        return self.global_weight * s_g + lass(sp, self.l_a, self.l_t, self.aggregation)

    def score(self, text: Rep, audio: Rep, chunk: int | None = None) -> Tensor:
        """All pairs (Bt, Ba): one prototype GEMM ((Bc*(K+1)) x (Ba*(K+1))) per caption chunk,
        then LASS vectorised over the (Bc, Ba) grid."""
        self._check_reps(text, audio)
        m = self.n_prototypes + 1
        pa = audio["protos"]
        ba = pa.shape[0]
        pa_flat = pa.reshape(ba * m, -1)  # (Ba*M, d)
        if self.matmul_dtype is not None:
            pa_flat = pa_flat.to(self.matmul_dtype)
        per_caption = 6 * ba * m * m * pa.element_size()
        out = []
        for s in caption_chunks(text["protos"].shape[0], chunk, per_caption, self.max_chunk_bytes):
            pt = text["protos"][s]
            bc = pt.shape[0]
            pt_flat = pt.reshape(bc * m, -1)
            if self.matmul_dtype is not None:
                pt_flat = pt_flat.to(self.matmul_dtype)
            sp = (pt_flat @ pa_flat.T).to(pa.dtype).view(bc, m, ba, m)  # [c, j(text), b, i(audio)]
            sp = sp.permute(3, 1, 0, 2).contiguous()  # planar (M audio, M text, Bc, Ba)
            s_g = text["emb"][s] @ audio["emb"].T  # (Bc, Ba)
            out.append(self.global_weight * s_g + lass(sp, self.l_a, self.l_t, self.aggregation, planar=True))
        return torch.cat(out, dim=0)
