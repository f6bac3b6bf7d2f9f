"""TAP scorer (METHODS §4, seed 002 eqs 5-9): the fast quadratic-form all-pairs path against a
per-pair loop written from the equations with torch's scaled_dot_product_attention."""
from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F

from soundseek.scoring import TAPScorer

DA, DT, D, DP = 6, 5, 8, 4


def _inputs(bt=4, ba=5, t=7, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(ba, t, DA, generator=g, dtype=dtype)
    lengths = torch.tensor([7, 3, 1, 0, 5])[:ba]
    fmask = torch.arange(t)[None] < lengths[:, None]
    tokens = torch.randn(bt, 6, DT, generator=g, dtype=dtype)
    tmask = torch.arange(6)[None] < torch.tensor([6, 2, 4, 1])[:bt, None]
    sentence = torch.randn(bt, DT, generator=g, dtype=dtype)
    return tokens, tmask, sentence, frames, fmask, lengths


def _model(dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    m = TAPScorer(DA, DT, D, DP, **kw).to(dtype)
    with torch.no_grad():  # move LayerNorm affine params away from (1, 0)
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return m.eval()


def _loop_reference(m, sentence, frames, lengths):
    """s(t, a) pair by pair from the raw inputs (eqs 4-9), only valid frames used."""
    out = torch.zeros(sentence.shape[0], frames.shape[0], dtype=sentence.dtype)
    for i in range(sentence.shape[0]):
        c_t = m.text_head(sentence[i])  # (d,)
        q = m.w_q(m.ln_t(c_t))
        for j in range(frames.shape[0]):
            n = int(lengths[j])
            if n == 0:
                att = torch.zeros(DP, dtype=sentence.dtype)
            else:
                x = m.ln_a(m.audio_head(frames[j, :n]))  # (n, d)
                att = F.scaled_dot_product_attention(q[None, None], m.w_k(x)[None], m.w_v(x)[None])[0, 0]
            z = m.ln_out(m.w_o(att))
            out[i, j] = F.cosine_similarity(c_t, z, dim=0)
    return out


def test_fast_path_equals_loop_float64_forward_and_gradient():
    tokens, tmask, sentence, frames, fmask, lengths = _inputs()
    m = _model()
    m.clip_tile = 2  # exercise clip tiling too
    frames.requires_grad_(True)
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    weights = torch.randn(4, 5, dtype=torch.float64)
    fast = m.score(text, audio, chunk=3)
    ref = _loop_reference(m, sentence, frames, lengths)
    assert fast.shape == (4, 5)
    assert torch.allclose(fast, ref, atol=1e-12, rtol=0)
    params = [frames] + list(m.parameters())
    g_fast = torch.autograd.grad((fast * weights).sum(), params, allow_unused=True)
    g_ref = torch.autograd.grad((ref * weights).sum(), params, allow_unused=True)
    for gf, gr in zip(g_fast, g_ref):
        if gr is None:
            assert gf is None or torch.all(gf == 0)
        else:
            assert torch.allclose(gf, gr, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("chunk", [None, 1, 2, 100])
def test_score_equals_stacked_score_pairs(chunk):
    tokens, tmask, sentence, frames, fmask, _ = _inputs()
    m = _model()
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    full = m.score(text, audio, chunk=chunk)
    loop = torch.stack([
        torch.stack([m.score_pairs({k: v[i : i + 1] for k, v in text.items()},
                                   {k: v[j : j + 1] for k, v in audio.items()})[0] for j in range(5)])
        for i in range(4)
    ])
    assert torch.allclose(full, loop, atol=1e-12)
    assert torch.allclose(m.score_reference(text, audio), loop, atol=1e-12)


def test_float32_fast_path_within_tolerance_and_inference_path_equal():
    tokens, tmask, sentence, frames, fmask, lengths = _inputs()
    m64 = _model()
    m32 = _model(torch.float32)
    m32.load_state_dict({k: v.float() for k, v in m64.state_dict().items()})
    ref = _loop_reference(m64, sentence, frames, lengths).detach()
    t32 = m32.encode_text(tokens.float(), tmask, sentence.float())
    a32 = m32.encode_audio(frames.float(), fmask)
    grad_path = m32.score(t32, a32)
    assert torch.allclose(grad_path.double(), ref, atol=2e-5)
    with torch.no_grad():  # in-place inference branch
        assert torch.allclose(m32.score(t32, a32), grad_path, atol=1e-6)


@pytest.mark.parametrize("how", ["mean", "cls"])
def test_text_pooling_options(how):
    tokens, tmask, sentence, frames, fmask, lengths = _inputs()
    m = _model(text_pooling=how)
    vec = (tokens * tmask[..., None]).sum(1) / tmask.sum(1, keepdim=True) if how == "mean" else tokens[:, 0]
    got = m.score(m.encode_text(tokens, tmask, None), m.encode_audio(frames, fmask))
    assert torch.allclose(got, _loop_reference(m, vec, frames, lengths), atol=1e-12)


def test_dropout_only_in_training():
    tokens, tmask, sentence, frames, fmask, _ = _inputs()
    m = _model(dropout=0.3)
    m0 = _model(dropout=0.0)
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    ev = m.score(text, audio)
    assert torch.equal(ev, m.score(text, audio))
    assert torch.allclose(ev, m0.score(text, audio), atol=1e-12)
    m.train()
    a, b = m.score(text, audio), m.score(text, audio)
    assert not torch.allclose(a, b)
    assert torch.isfinite(a).all()
    m0.train()  # training without dropout is still exact
    assert torch.allclose(m0.score(text, audio), m0.score_reference(text, audio), atol=1e-12)


def test_uniform_attention_equals_global_embedding():
    tokens, tmask, sentence, frames, fmask, _ = _inputs()
    m = _model()
    with torch.no_grad():
        m.w_q.weight.zero_()  # Q = 0 -> uniform attention over the valid frames
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    assert torch.allclose(m.score(text, audio), text["emb"] @ audio["emb"].T, atol=1e-12)


@pytest.mark.parametrize("dtype", ["bfloat16", "bfloat16-logits"])
def test_bfloat16_gemms_are_close(dtype):
    torch.manual_seed(0)
    m = TAPScorer(16, 12, 64, 32).eval()
    mb = TAPScorer(16, 12, 64, 32, matmul_dtype=dtype).eval()
    mb.load_state_dict(m.state_dict())
    mask = torch.rand(40, 10) > 0.2
    with torch.no_grad():
        text = m.encode_text(None, None, torch.randn(30, 12))
        audio = m.encode_audio(torch.randn(40, 10, 16), mask)
        s, sb = m.score(text, audio), mb.score(text, audio)
    assert sb.dtype == torch.float32
    assert (s - sb).abs().max() < 2e-2
    assert not torch.equal(s, sb)


def test_errors():
    tokens, tmask, sentence, frames, fmask, _ = _inputs()
    m = _model()
    with pytest.raises(ValueError, match="audio_dim=6"):
        m.encode_audio(frames[..., :4], fmask)
    with pytest.raises(ValueError, match="text_dim=5"):
        m.encode_text(None, None, sentence[:, :3])
    with pytest.raises(ValueError, match="Invalid text_pooling 'avg'. Valid: sentence, mean, cls"):
        TAPScorer(DA, DT, D, DP, text_pooling="avg")
    with pytest.raises(ValueError, match="Valid: None, float32, bfloat16"):
        TAPScorer(DA, DT, D, DP, matmul_dtype="fp8")
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    with pytest.raises(ValueError, match="lacks \\['gram'\\]"):
        m.score(text, {k: v for k, v in audio.items() if k != "gram"})
    with pytest.raises(ValueError, match="aligned pairs"):
        m.score_pairs(text, audio)
    with pytest.raises(ValueError, match="chunk must be a positive"):
        m.score(text, audio, chunk=0)


def test_cat_reps_of_batches_padded_to_different_lengths_scores_like_the_loop():
    """Clips encoded in batches of different padded lengths and joined (as evaluation does)
    score exactly like the per-pair loop on the valid frames."""
    m = _model()
    _, _, sentence, frames, fmask, lengths = _inputs()
    text = m.encode_text(None, None, sentence)
    parts = [m.encode_audio(frames[:2, :7], fmask[:2, :7]),  # T = 7
             m.encode_audio(frames[2:4, :1], fmask[2:4, :1]),  # T = 1
             m.encode_audio(frames[4:, :5], fmask[4:, :5])]  # T = 5
    audio = m.cat_reps(parts)
    assert audio["gram"].shape == (5, 15, 7) and audio["mask"].shape == (5, 7)
    torch.testing.assert_close(m.score(text, audio), _loop_reference(m, sentence, frames, lengths))
    torch.testing.assert_close(audio["gram"][2:4, :1, :1], parts[1]["gram"][:, :1])  # G1 block in place
    torch.testing.assert_close(audio["gram"][2:4, 7:8, :1], parts[1]["gram"][:, 1:2])  # G2 block at row T
    torch.testing.assert_close(audio["gram"][2:4, 14, :1], parts[1]["gram"][:, 2])  # e_c at row 2T
