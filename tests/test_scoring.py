"""Scorer interface (all scorers), projection heads, GlobalScorer and the SCORERS registry."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundseek.config import ConfigError
from soundseek.pooling import masked_max, masked_mean
from soundseek.scoring import SCORERS, GlobalScorer, ProjectionHead, build_scorer

DA, DT, D = 6, 5, 8
OPTIONS = {
    "global": {},
    "global_netrvlad": {"pooling": "netrvlad", "pooling_options": {"n_clusters": 2, "out_dim": 7}},
    "global_mahalanobis": {"similarity": "mahalanobis", "metric_options": {"init": "random"}},
    "tap": {"attn_dim": 4},
    "gpa": {"n_prototypes": 2},
}


def _inputs(bt=4, ba=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.randn(ba, 7, DA, generator=g, dtype=dtype)
    fmask = torch.arange(7)[None] < torch.tensor([7, 3, 1, 0, 5])[:ba, None]
    tokens = torch.randn(bt, 6, DT, generator=g, dtype=dtype)
    tmask = torch.arange(6)[None] < torch.tensor([6, 2, 4, 1])[:bt, None]
    sentence = torch.randn(bt, DT, generator=g, dtype=dtype)
    return tokens, tmask, sentence, frames, fmask


def _build(key, **extra):
    torch.manual_seed(0)
    name = key.split("_")[0]
    return build_scorer(name, audio_dim=DA, text_dim=DT, embed_dim=D, **OPTIONS[key], **extra).double()


@pytest.mark.parametrize("key", list(OPTIONS))
def test_score_equals_pair_loop_forward_and_gradient(key):
    tokens, tmask, sentence, frames, fmask = _inputs()
    m = _build(key).eval()
    frames.requires_grad_(True)
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    assert all(v.shape[0] == 4 for v in text.values()) and all(v.shape[0] == 5 for v in audio.values())
    full = m.score(text, audio, chunk=2)
    loop = torch.stack([
        torch.cat([m.score_pairs({k: v[i : i + 1] for k, v in text.items()},
                                 {k: v[j : j + 1] for k, v in audio.items()}) for j in range(5)])
        for i in range(4)
    ])
    assert full.shape == (4, 5)
    assert torch.allclose(full, loop, atol=1e-12)
    assert torch.allclose(m.score(text, audio), full, atol=1e-12)
    w = torch.randn(4, 5, dtype=torch.float64)
    params = [frames] + [p for p in m.parameters()]
    g1 = torch.autograd.grad((full * w).sum(), params, allow_unused=True, retain_graph=True)
    g2 = torch.autograd.grad((loop * w).sum(), params, allow_unused=True)
    for a, b in zip(g1, g2):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-10)
    # forward() is encode + score
    assert torch.allclose(m(tokens, tmask, sentence, frames, fmask), full, atol=1e-12)


@pytest.mark.parametrize("key", list(OPTIONS))
def test_train_mode_without_dropout_equals_eval_and_dims_are_checked(key):
    tokens, tmask, sentence, frames, fmask = _inputs()
    m = _build(key)
    ev = m.eval()(tokens, tmask, sentence, frames, fmask)
    tr = m.train()(tokens, tmask, sentence, frames, fmask)
    assert torch.allclose(ev, tr, atol=1e-12)
    with pytest.raises(ValueError, match=f"audio_dim={DA}"):
        m.encode_audio(torch.zeros(2, 3, DA + 1, dtype=torch.float64), None)
    with pytest.raises(ValueError, match=f"text_dim={DT}"):
        m.encode_text(torch.zeros(2, 3, DT + 2, dtype=torch.float64), None, None)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        m.encode_audio(torch.zeros(2, 3, DA, dtype=torch.float64), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="lacks"):
        m.score({"nothing": torch.zeros(2)}, m.encode_audio(frames, fmask))


def test_global_scorer_matches_manual_pipeline():
    tokens, tmask, sentence, frames, fmask = _inputs()
    m = _build("global").eval()
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    pooled = masked_mean(frames, fmask) + masked_max(frames, fmask)
    a = F.normalize(m.audio_head.fc2(torch.relu(m.audio_head.fc1(pooled))), dim=-1)
    t = F.normalize(m.text_head.fc2(torch.relu(m.text_head.fc1(sentence))), dim=-1)
    assert torch.allclose(m.score(text, audio), t @ a.T, atol=1e-12)
    assert torch.allclose(text["emb"].norm(dim=-1), torch.ones(4, dtype=torch.float64))


def test_global_mahalanobis_identity_is_euclidean():
    tokens, tmask, sentence, frames, fmask = _inputs()
    m = build_scorer("global", audio_dim=DA, text_dim=DT, embed_dim=D, similarity="mahalanobis").double()
    text, audio = m.encode_text(tokens, tmask, sentence), m.encode_audio(frames, fmask)
    s = m.score(text, audio)
    cos = text["emb"] @ audio["emb"].T
    assert torch.allclose(s, -(2 - 2 * cos).clamp_min(0).add(m.metric.eps).sqrt(), atol=1e-7)


def test_projection_head():
    head = ProjectionHead(5, 3, hidden=7)
    y = head(torch.randn(2, 4, 5))
    assert y.shape == (2, 4, 3) and torch.allclose(y.norm(dim=-1), torch.ones(2, 4))
    assert head.fc1.out_features == 7
    raw = ProjectionHead(5, 3, normalize=False)
    assert not torch.allclose(raw(torch.randn(3, 5)).norm(dim=-1), torch.ones(3))
    with pytest.raises(ValueError, match="last dimension 5"):
        head(torch.randn(2, 4))
    with pytest.raises(ValueError, match="dropout"):
        ProjectionHead(5, 3, dropout=1.5)


def test_linear_and_identity_heads():
    from soundseek.scoring.heads import IdentityHead, LinearHead, build_head

    x = torch.randn(3, 5)
    ident = build_head("identity", 5, 5)
    assert isinstance(ident, IdentityHead) and torch.allclose(ident(x), x / x.norm(dim=-1, keepdim=True))
    assert list(ident.parameters()) == []
    lin = build_head("linear", 5, 3)
    assert isinstance(lin, LinearHead) and torch.allclose(lin(x), torch.nn.functional.normalize(lin.fc(x), dim=-1))
    assert isinstance(build_head("mlp", 5, 3, hidden=7), ProjectionHead)
    with pytest.raises(ValueError, match="identity head needs embed_dim equal to its input size 5"):
        build_head("identity", 5, 3)
    with pytest.raises(ValueError, match="Invalid head 'conv'. Valid: mlp, linear, identity"):
        build_head("conv", 5, 3)
    # a global scorer with a locked text space scores captions by the text encoder's own vectors
    s = GlobalScorer(DA, DT, DT, text_head="identity")
    sent = torch.randn(4, DT)
    assert torch.allclose(s.encode_text(None, None, sent)["emb"], torch.nn.functional.normalize(sent, dim=-1))
    assert not any(n.startswith("text_head") for n, _ in s.named_parameters())


def test_registry_and_build_errors():
    assert SCORERS.names() == ["clap", "ensemble", "global", "gpa", "tap"]
    with pytest.raises(KeyError, match="Valid: clap, ensemble, global, gpa, tap"):
        build_scorer("clip", audio_dim=4, text_dim=4)
    with pytest.raises(ConfigError, match="Unknown option 'n_heads' for scorer 'tap'. Valid: audio_dim"):
        build_scorer("tap", audio_dim=4, text_dim=4, n_heads=2)
    with pytest.raises(ValueError, match="Invalid similarity 'dot'. Valid: cosine, mahalanobis"):
        GlobalScorer(4, 4, similarity="dot")
    with pytest.raises(KeyError, match="Invalid pooling 'avg'"):
        GlobalScorer(4, 4, pooling="avg")
    with pytest.raises(ValueError, match="embed_dim must be a positive integer"):
        GlobalScorer(4, 4, embed_dim=0)
    with pytest.raises(ValueError, match="needs the sentence vector"):
        GlobalScorer(DA, DT, D).encode_text(torch.zeros(2, 3, DT), None, None)


def test_cat_reps_pads_and_rejects_mixed_ranks():
    from soundseek.scoring.base import cat_reps

    a = {"x": torch.ones(2, 3, 4), "mask": torch.ones(2, 3, dtype=torch.bool)}
    b = {"x": torch.ones(1, 5, 4), "mask": torch.ones(1, 5, dtype=torch.bool)}
    out = cat_reps([a, b])
    assert out["x"].shape == (3, 5, 4) and out["mask"].dtype == torch.bool
    assert out["mask"].sum().item() == 2 * 3 + 5 and out["x"][:2, 3:].abs().sum() == 0
    with pytest.raises(ValueError, match="different ranks"):
        cat_reps([a, {"x": torch.ones(1, 4), "mask": torch.ones(1, 5, dtype=torch.bool)}])
    with pytest.raises(ValueError, match="at least one"):
        cat_reps([])
