"""Text-aware attention pooling (TAP) scorer (Xin et al., ICASSP 2023 = seed 002, eqs 5-9;
METHODS §4).

Encoder outputs -> c_t, c_a (our choice, following the seed's formulation where c_t in R^D and
c_a in R^{T x D} live in the shared size D = d): the caption vector (sentence / mean / cls) and
every audio frame go through an MLP projection head to d (METHODS §3, no L2 norm here), so
``c_t = head_t(sentence) (d,)``, ``c_a = head_a(frames) (T, d)``, ``z_t = c_t / ||c_t||`` (eq 1).

    Q = LN(c_t) W_Q,  K = LN(c_a) W_K,  V = LN(c_a) W_V          (eqs 5-7, W in R^{d x Dp})
    A = softmax_masked(Q K^T / sqrt(Dp))  [dropout on A, training only]     (eq 8)
    z_{a|t} = LN(A V W_O)                                           (eq 9, W_O in R^{Dp x d})
    s(t, a) = cos(z_t, z_{a|t})                                     (eq 4)

Padding frames get attention 0; a clip without any valid frame has A = 0, so z_{a|t} = LN(0)
= beta (the output LayerNorm's bias). Dropout (``dropout``) acts on the attention weights
(as ``nn.MultiheadAttention`` does), which keeps the fast path below exact in training too.

Fast all-pairs path (``score``). Let C = V W_O P (rows centred over d, P = I - 11^T/d), so the
centred attention output is h_c = A C. With LN gain g and bias b (eps e):
    sigma^2 = A G1 A^T / d + e,              G1 = C C^T              (T x T, per clip)
    z . y   = (A (V u_t)) / sigma + z.b,      u_t = W_O P (g * z_t)   (Dp, per caption)
    ||y||^2 = A G2 A^T / sigma^2 + 2 A e_c / sigma + ||b||^2,
              G2 = C diag(g^2) C^T,  e_c = C (g * b)
so a pair costs two length-Dp contractions per frame (Q K^T and V u_t, both one GEMM over all
pairs) plus an O(T^2) quadratic form, instead of the O(T d) attention output + LayerNorm.
``[G1; G2; e_c^T]`` (2T+1, T) is computed once per clip in ``encode_audio`` ("gram").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..pooling.basic import masked_mean
from .base import TEXT_POOLINGS, Rep, Scorer, caption_chunks, cat_reps, check_choice, pad_to, rep_size, require, text_vector
from .heads import ProjectionHead, l2_normalize

MATMUL_DTYPES = (None, "float32", "bfloat16", "bfloat16-logits")
_TINY = 1e-12


def masked_softmax(logits: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Softmax over ``dim`` with masked entries 0; all-masked slices give all zeros."""
    x = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    a = torch.softmax(x, dim=dim)
    empty = ~mask.any(dim=dim, keepdim=True)
    return a.masked_fill(empty, 0.0) if bool(empty.any()) else a


class TAPScorer(Scorer):
    """TAP scorer. Args: audio_dim, text_dim, embed_dim (d), attn_dim (Dp, 512 in the paper),
    dropout (on the attention weights, training only), text_pooling ("sentence"|"mean"|"cls"),
    hidden (MLP head width, default d), head_dropout, ln_eps, matmul_dtype (None/"float32",
    "bfloat16" or "bfloat16-logits": run both big GEMMs of ``score`` (Q K^T and V u_t), or only
    the logits one, in bfloat16 for evaluation speed; the rest stays in the input dtype).

    Representations:
        encode_text -> {"emb": z_t (Bt, d) unit, "q": Q (Bt, Dp)}
        encode_audio -> {"K", "V": (Ba, T, Dp), "mask": (Ba, T), "gram": (Ba, 2T+1, T),
                         "emb": (Ba, d) unit = z_{a|t} with uniform attention over valid frames,
                         a text-agnostic embedding for first-stage (index) retrieval}
    """

    name = "tap"
    clip_tile: int = 128  # clips per tile of ``score``
    max_chunk_bytes: int = 48 * 2**20  # working arrays of one tile (512 captions x 128 clips x T=32)

    def __init__(
        self,
        audio_dim: int,
        text_dim: int,
        embed_dim: int = 1024,
        attn_dim: int = 512,
        dropout: float = 0.0,
        text_pooling: str = "sentence",
        hidden: int | None = None,
        head_dropout: float = 0.0,
        ln_eps: float = 1e-5,
        matmul_dtype: str | None = None,
    ) -> None:
        super().__init__(audio_dim, text_dim, embed_dim)
        check_choice("text_pooling", text_pooling, TEXT_POOLINGS)
        check_choice("matmul_dtype", matmul_dtype, MATMUL_DTYPES)
        if int(attn_dim) <= 0:
            raise ValueError(f"attn_dim must be a positive integer, got {attn_dim!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        d, dp = self.embed_dim, int(attn_dim)
        self.attn_dim, self.dropout, self.text_pooling = dp, float(dropout), text_pooling
        self.matmul_dtype = matmul_dtype
        self.text_head = ProjectionHead(self.text_dim, d, hidden, head_dropout, normalize=False)
        self.audio_head = ProjectionHead(self.audio_dim, d, hidden, head_dropout, normalize=False)
        self.ln_t, self.ln_a, self.ln_out = (nn.LayerNorm(d, eps=ln_eps) for _ in range(3))
        self.w_q, self.w_k, self.w_v = (nn.Linear(d, dp, bias=False) for _ in range(3))
        self.w_o = nn.Linear(dp, d, bias=False)

    # -- encoders ---------------------------------------------------------------------------
    def encode_text(self, tokens: Tensor | None, token_mask: Tensor | None, sentence: Tensor | None) -> Rep:
        tokens, token_mask, sentence = self.check_text(tokens, token_mask, sentence)
        c_t = self.text_head(text_vector(tokens, token_mask, sentence, self.text_pooling))  # (Bt, d)
        return {"emb": l2_normalize(c_t), "q": self.w_q(self.ln_t(c_t))}

    def encode_audio(self, frames: Tensor, frame_mask: Tensor | None) -> Rep:
        frames, mask = self.check_audio(frames, frame_mask)
        x = self.ln_a(self.audio_head(frames))  # LN(c_a) (Ba, T, d)
        k, v = self.w_k(x), self.w_v(x)  # (Ba, T, Dp)
        emb = l2_normalize(self.ln_out(self.w_o(masked_mean(v, mask))))  # uniform attention
        return {"K": k, "V": v, "mask": mask, "gram": self._gram(v), "emb": emb}

    def _gram(self, v: Tensor) -> Tensor:
        """[G1; G2; e_c^T] (Ba, 2T+1, T) of the module docstring."""
        vw = self.w_o(v)  # (Ba, T, d)
        c = vw - vw.mean(dim=-1, keepdim=True)
        g, b = self.ln_out.weight, self.ln_out.bias
        g1 = c @ c.transpose(1, 2)  # (Ba, T, T)
        g2 = (c * g.square()) @ c.transpose(1, 2)
        e = (c @ (g * b)).unsqueeze(1)  # (Ba, 1, T)
        return torch.cat([g1, g2, e], dim=1)

    def cat_reps(self, parts: list[Rep]) -> Rep:
        """Batches of clips padded to different T joined: K, V and mask padded at the end of
        T, and each block of gram ([G1; G2; e_c^T]) padded on its own so the blocks stay at
        rows 0, T and 2T. Padded frames get attention 0, so the scores are unchanged."""
        if not parts or "gram" not in parts[0]:
            return cat_reps(parts)
        t = max(p["gram"].shape[-1] for p in parts)
        grams = []
        for p in parts:
            g, ti = p["gram"], p["gram"].shape[-1]
            blocks = (g[:, :ti], g[:, ti: 2 * ti], g[:, 2 * ti:])
            grams.append(torch.cat([pad_to(b, (b.shape[0], n, t)) for b, n in zip(blocks, (t, t, 1))], dim=1))
        out = cat_reps([{k: v for k, v in p.items() if k != "gram"} for p in parts])
        out["gram"] = torch.cat(grams)
        return out

    # -- scoring ----------------------------------------------------------------------------
    def _check_reps(self, text: Rep, audio: Rep) -> None:
        require(text, ("emb", "q"), "text", self.name)
        require(audio, ("K", "V", "mask", "gram"), "audio", self.name)
        rep_size(text, "text"), rep_size(audio, "audio")
        dp = self.attn_dim
        if text["q"].shape[-1] != dp or audio["K"].shape[-1] != dp or audio["V"].shape[-1] != dp:
            raise ValueError(
                f"{self.name}: q/K/V must have Dp={dp}, got {text['q'].shape[-1]}/{audio['K'].shape[-1]}/{audio['V'].shape[-1]}"
            )
        if text["emb"].shape[-1] != self.embed_dim:
            raise ValueError(f"{self.name}: text emb must have d={self.embed_dim}, got {text['emb'].shape[-1]}")

    def _attention(self, logits: Tensor, mask: Tensor, dim: int) -> Tensor:
        a = masked_softmax(logits, mask, dim)
        if self.training and self.dropout > 0:
            a = F.dropout(a, self.dropout, training=True)
        return a

    def score_pairs(self, text: Rep, audio: Rep) -> Tensor:
        """Reference: z_{a|t} computed explicitly for aligned pairs i <-> i. Returns (N,)."""
        self._check_reps(text, audio)
        self._check_pairs(text, audio)
        logits = torch.einsum("np,ntp->nt", text["q"], audio["K"]) / math.sqrt(self.attn_dim)
        a = self._attention(logits, audio["mask"], dim=-1)  # (N, T)
        y = self.ln_out(self.w_o(torch.einsum("nt,ntp->np", a, audio["V"])))  # (N, d)
        return (text["emb"] * y).sum(-1) / y.norm(dim=-1).clamp_min(_TINY)

    def score(self, text: Rep, audio: Rep, chunk: int | None = None) -> Tensor:
        """All pairs (Bt, Ba) by the quadratic-form expansion, in tiles of ``clip_tile`` clips
        x ``chunk`` captions (default: as many as fit ``max_chunk_bytes`` of tile arrays,
        which is sized to stay in cache). Clip tiles form the outer loop so that a tile's
        K and V are read from memory once."""
        self._check_reps(text, audio)
        k, v, mask, gram = audio["K"], audio["V"], audio["mask"], audio["gram"]
        ba, t, dp = k.shape
        if gram.shape != (ba, 2 * t + 1, t):
            raise ValueError(f"{self.name}: audio gram must have shape {(ba, 2 * t + 1, t)}, got {tuple(gram.shape)}")
        # the frame mask enters the logits GEMM as one extra column: 0 (valid) or -1e30 (padding)
        pad = torch.zeros_like(k[..., :1]).masked_fill(~mask.unsqueeze(-1), -1e30)
        k_flat = torch.cat([k, pad], dim=-1).reshape(ba * t, dp + 1)
        v_flat = v.reshape(ba * t, dp)
        empty = ~mask.any(dim=1)  # clips without valid frames get A = 0
        keep = (~empty).to(v.dtype)[:, None, None] if bool(empty.any()) else None
        q, z = text["q"], text["emb"]  # (Bt, Dp), (Bt, d)
        q1 = torch.cat([q / math.sqrt(dp), torch.ones_like(q[:, :1])], dim=-1)  # (Bt, Dp+1)
        gz = self.ln_out.weight * z
        u = (gz - gz.mean(dim=-1, keepdim=True)) @ self.w_o.weight  # (Bt, Dp): W_O P (g * z_t)
        zb = z @ self.ln_out.bias  # (Bt,)
        dt_k, dt_v = self._gemm_dtypes()
        k_flat, q1, v_flat, u = k_flat.to(dt_k), q1.to(dt_k), v_flat.to(dt_v), u.to(dt_v)
        tile = min(ba, self.clip_tile)
        chunks = list(caption_chunks(q.shape[0], chunk, 6 * tile * t * k.element_size(), self.max_chunk_bytes))
        cols = []
        for c0 in range(0, ba, tile):
            c1 = min(ba, c0 + tile)
            kt, vt, gt = k_flat[c0 * t : c1 * t], v_flat[c0 * t : c1 * t], gram[c0:c1]
            kp = None if keep is None else keep[c0:c1]
            parts = [self._tile(kt @ q1[s].T, vt @ u[s].T, gt, zb[s], kp, t) for s in chunks]
            cols.append(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])  # (nb, Bt)
        return (torch.cat(cols, dim=0) if len(cols) > 1 else cols[0]).T

    def _gemm_dtypes(self) -> tuple[torch.dtype | None, torch.dtype | None]:
        bf = torch.bfloat16
        return {"bfloat16": (bf, bf), "bfloat16-logits": (bf, None)}.get(self.matmul_dtype or "", (None, None))

    def _tile(self, logits: Tensor, w: Tensor, gram: Tensor, zb: Tensor, keep: Tensor | None, t: int) -> Tensor:
        """Scores (nb, Bc) of one tile from logits / w = V u^T ((nb*T, Bc) each), the clips'
        gram (nb, 2T+1, T) and the captions' z_t . b (Bc,)."""
        nb, bc, dt = gram.shape[0], zb.shape[0], gram.dtype
        a = torch.softmax(logits.view(nb, t, bc).to(dt), dim=1)  # (nb, T, Bc)
        if keep is not None:
            a = a * keep
        if self.training and self.dropout > 0:
            a = F.dropout(a, self.dropout, training=True)
        w = w.view(nb, t, bc).to(dt)
        ga = torch.bmm(gram, a)  # (nb, 2T+1, Bc)
        s4 = ga[:, 2 * t]
        quad = ga[:, : 2 * t].view(nb, 2, t, bc)
        if torch.is_grad_enabled():
            a1 = (a * w).sum(1)  # (nb, Bc)
            s23 = (quad * a.unsqueeze(1)).sum(2)  # (nb, 2, Bc)
        else:  # inference: reuse buffers
            a1 = w.mul_(a).sum(1)
            s23 = quad.mul_(a.unsqueeze(1)).sum(2)
        b = self.ln_out.bias
        inv = torch.rsqrt(s23[:, 0] / self.embed_dim + self.ln_out.eps)  # 1 / sigma
        num = a1 * inv + zb
        ysq = s23[:, 1] * inv.square() + 2 * s4 * inv + b.square().sum()
        return num / ysq.clamp_min(_TINY * _TINY).sqrt()  # = num / max(||y||, tiny), finite gradients
