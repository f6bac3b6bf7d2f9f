"""GPA scorer (METHODS §5, seed 000): prototypes (eq 1), LASS (eqs 2-8) and R = s_g + s'_p (eq 9),
batched all-pairs path against a per-pair loop written from the equations."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from soundseek.scoring import GPAScorer

DA, DT, D, K = 6, 5, 8, 3


def _inputs(bt=4, ba=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(ba, 7, DA, generator=g, dtype=dtype)
    flen = torch.tensor([7, 3, 1, 0, 5])[:ba]
    tokens = torch.randn(bt, 6, DT, generator=g, dtype=dtype)
    tlen = torch.tensor([6, 2, 4, 1])[:bt]
    sentence = torch.randn(bt, DT, generator=g, dtype=dtype)
    fmask = torch.arange(7)[None] < flen[:, None]
    tmask = torch.arange(6)[None] < tlen[:, None]
    return tokens, tmask, tlen, sentence, frames, fmask, flen


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    m = GPAScorer(DA, DT, D, n_prototypes=K, **kw).double()
    with torch.no_grad():
        for lin in (m.l_a, m.l_t):
            if lin is not None:
                lin.weight.add_(0.5 * torch.randn_like(lin.weight))
                lin.bias.add_(0.5 * torch.randn_like(lin.bias))
    return m.eval()


def _protos_ref(gen, x):
    """Eq 1 (mask) or the attention ablation over the valid rows x (n, D) -> (K, D)."""
    out = []
    for k in range(gen.k):
        p = torch.zeros(x.shape[-1], dtype=x.dtype)
        if gen.kind == "mask":
            for j in range(x.shape[0]):
                p = p + x[j] * torch.relu(gen.f_mask.weight[k] @ x[j] + gen.f_mask.bias[k])
        elif x.shape[0] > 0:
            logits = torch.stack([gen.queries[k] @ gen.key(x[j]) / math.sqrt(gen.attn_dim) for j in range(x.shape[0])])
            w = torch.softmax(logits, 0)
            for j in range(x.shape[0]):
                p = p + w[j] * x[j]
        out.append(p)
    return torch.stack(out)


def _la(vec, lin, mode):
    """softmax -> (linear -> softmax) weights over one vector; weighted sum."""
    if mode == "mean":
        return vec.mean()
    w = torch.softmax(vec, 0)
    if mode == "lass":
        w = torch.softmax(lin.weight @ w + lin.bias, 0)
    return (w * vec).sum()


def _lass_ref(sp, m, mode):
    n = sp.shape[0]  # rows i audio, columns j text
    s_a = torch.stack([_la(sp[:, j], m.l_a, mode) for j in range(n)])  # eqs 2-4
    s_a2 = _la(s_a, m.l_t, mode)  # eqs 5-7
    s_t = torch.stack([_la(sp[i, :], m.l_t, mode) for i in range(n)])
    s_t2 = _la(s_t, m.l_a, mode)
    return s_a2 + s_t2  # eq 8


def _loop_reference(m, tokens, tlen, sentence, frames, flen, mode):
    out = torch.zeros(tokens.shape[0], frames.shape[0], dtype=tokens.dtype)
    for i in range(tokens.shape[0]):
        tok = tokens[i, : tlen[i]]
        pt = torch.cat([_protos_ref(m.text_gen, tok), sentence[i][None]])  # (K+1, Dt)
        pt = F.normalize(m.text_proto.fc2(torch.relu(m.text_proto.fc1(pt))), dim=-1)
        gt = m.text_global(sentence[i])
        for j in range(frames.shape[0]):
            fr = frames[j, : flen[j]]
            pooled = fr.mean(0) + fr.max(0).values if len(fr) else torch.zeros(DA, dtype=fr.dtype)
            pa = torch.cat([_protos_ref(m.audio_gen, fr), pooled[None]])
            pa = F.normalize(m.audio_proto.fc2(torch.relu(m.audio_proto.fc1(pa))), dim=-1)
            s_g = F.cosine_similarity(gt, m.audio_global(pooled), dim=0)
            sp = torch.stack([torch.stack([pa[a] @ pt[b] for b in range(K + 1)]) for a in range(K + 1)])
            out[i, j] = m.global_weight * s_g + _lass_ref(sp, m, mode)
    return out


@pytest.mark.parametrize("generator,aggregation", [("mask", "lass"), ("mask", "mean"), ("mask", "softmax"), ("attention", "lass")])
def test_batched_equals_loop_forward_and_gradient(generator, aggregation):
    tokens, tmask, tlen, sentence, frames, fmask, flen = _inputs()
    m = _model(generator=generator, aggregation=aggregation, global_weight=0.7)
    frames.requires_grad_(True)
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    fast = m.score(text, audio, chunk=3)
    ref = _loop_reference(m, tokens, tlen, sentence, frames, flen, aggregation)
    assert torch.allclose(fast, ref, atol=1e-12, rtol=0)
    w = torch.randn(4, 5, dtype=torch.float64)
    params = [frames] + list(m.parameters())
    g_fast = torch.autograd.grad((fast * w).sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad((ref * w).sum(), params, allow_unused=True)
    for gf, gr in zip(g_fast, g_ref):
        if gr is None:
            assert gf is None or torch.all(gf == 0)
        else:
            assert torch.allclose(gf, gr, atol=1e-10, rtol=1e-8)


def test_mean_ablation_is_twice_the_mean():
    tokens, tmask, _, sentence, frames, fmask, _ = _inputs()
    m = _model(aggregation="mean", global_weight=0.0)
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    sp = torch.einsum("tjd,aid->taij", text["protos"], audio["protos"])
    assert torch.allclose(m.score(text, audio), 2 * sp.mean((-1, -2)), atol=1e-12)


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_score_equals_score_pairs_float32(chunk):
    tokens, tmask, _, sentence, frames, fmask, _ = _inputs(dtype=torch.float32)
    m = _model().float()
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    assert torch.allclose(m.score(text, audio, chunk=chunk), m.score_reference(text, audio), atol=1e-6)


def test_lass_init_is_identity_and_padding_ignored():
    tokens, tmask, _, sentence, frames, fmask, _ = _inputs()
    m = GPAScorer(DA, DT, D).double()
    assert torch.equal(m.l_a.weight, torch.eye(4, dtype=torch.float64))
    a1 = m.encode_audio(frames, fmask)
    frames2 = frames.clone()
    frames2[~fmask] = float("nan")
    a2 = m.encode_audio(frames2, fmask)
    assert torch.allclose(a1["protos"], a2["protos"]) and torch.allclose(a1["emb"], a2["emb"])


def test_errors():
    tokens, tmask, _, sentence, frames, fmask, _ = _inputs()
    with pytest.raises(ValueError, match="Invalid aggregation 'max'. Valid: lass, mean, softmax"):
        GPAScorer(DA, DT, D, aggregation="max")
    with pytest.raises(ValueError, match="Invalid generator 'gnn'. Valid: mask, attention"):
        GPAScorer(DA, DT, D, generator="gnn")
    m = _model()
    with pytest.raises(ValueError, match="needs the token features"):
        m.encode_text(None, None, sentence)
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    other = _model(seed=1)
    other.n_prototypes = 2
    with pytest.raises(ValueError, match=r"protos must be \(B, 3, 8\)"):
        other.score(text, audio)
