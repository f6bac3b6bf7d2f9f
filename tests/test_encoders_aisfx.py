"""aisfx encoder: packaged checkpoint via weights_only, network and mel parity with aisfx itself."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from soundseek.encoders.aisfx import SPEC_MAX, AisfxEncoder, essentia_mel_filterbank
from soundseek.encoders.checkpoint import CheckpointError

torch.set_num_threads(2)
pytest.importorskip("aisfx")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"
CLIP = DATA / "audio" / "sonic-pi" / "ambi_dark_woosh.flac"  # 44.1 kHz, 3.7 s


@pytest.fixture(scope="module")
def enc():
    return AisfxEncoder.from_pretrained()


@pytest.fixture(scope="module")
def original():
    """aisfx's own CrossNet with its weights (trusted packaged file; test-only full unpickle)."""
    from aisfx.inference import load_bestModel
    from aisfx.models import cnn2d  # noqa: F401

    weights, ds = torch.load(AisfxEncoder.default_checkpoint(), map_location="cpu", weights_only=False)
    return load_bestModel(weights, ds, "cpu")


def test_weights_equal_original(enc, original):
    ours = enc.state_dict()
    theirs = {k[len("embedding_net."):]: v for k, v in original.state_dict().items() if k.startswith("embedding_net.")}
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert enc.config()["weights"].startswith("aisfx-0.1.2:") and enc.out_dim == 512


def test_network_matches_original_on_blocks(enc, original):
    x = torch.rand(3, 100, 96, generator=torch.Generator().manual_seed(0))  # aisfx blocks of 100 frames
    with torch.no_grad():
        ref = original.get_embedding(x)  # (3, 512): max over time inside the network
        frames = enc.forward_mel(x)  # (3, 12, 512)
        ours = enc.clip(frames, torch.ones(frames.shape[:2], dtype=torch.bool))
    assert frames.shape == (3, 12, 512)
    assert (ours - ref).abs().max() < 1e-5


def test_frames_and_mask_shapes(enc):
    wave = torch.randn(2, 44100) * 0.1
    mask = torch.ones_like(wave, dtype=torch.bool)
    mask[1, 20000:] = False
    with torch.no_grad():
        f, m = enc(wave, mask)
        f1, _ = enc(wave[1:, :20000])
    assert f.shape == (2, 5, 512) and m.tolist() == [[True] * 5, [True, True, False, False, False]]
    assert f1.shape[1] == int(m[1].sum())


def test_essentia_filterbank_unit_sum():
    fb = essentia_mel_filterbank()
    assert fb.shape == (96, 1025) and np.allclose(fb.sum(1), 1.0, atol=1e-5)


def _needs_clip():
    if not CLIP.is_file():
        pytest.skip("real-sfx-dev data absent")


def test_mel_matches_essentia(enc):
    _needs_clip()
    pytest.importorskip("essentia")
    from aisfx.spectrogram.spectrogram_essentia import compute_spectrogram

    from soundseek.audio.io import load_audio

    ref = compute_spectrogram(str(CLIP), sr=44100.0, block_size=2048, hop_size=1024, n_mels=96, f_min=0.0,
                              f_max=22050.0) / SPEC_MAX  # (T+1, 96): essentia keeps one more tail frame
    wave = torch.from_numpy(load_audio(CLIP, 44100))[None]
    with torch.no_grad():
        ours = enc.features(wave)[0].numpy()  # (T, 96)
    assert ref.shape[0] - ours.shape[0] in (0, 1)
    assert np.abs(ours - ref[: ours.shape[0]]).max() < 1e-4


def test_librosa_frontend_matches_aisfx_librosa_path():
    _needs_clip()
    pytest.importorskip("librosa")
    from aisfx.spectrogram.spectrogram_librosa import compute_spectrogram

    from soundseek.audio.io import load_audio

    ref = compute_spectrogram(str(CLIP), sr=44100.0, block_size=2048, hop_size=1024, n_mels=96, f_min=0.0,
                              f_max=22050.0).T / SPEC_MAX  # aisfx returns (96, T): transposed here
    lib = AisfxEncoder(frontend="librosa")
    wave = torch.from_numpy(load_audio(CLIP, 44100))[None]
    with torch.no_grad():
        ours = lib.features(wave)[0].numpy()
    assert ours.shape == ref.shape and np.abs(ours - ref).max() < 1e-4


def test_missing_checkpoint_and_bad_frontend(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        AisfxEncoder.from_pretrained(tmp_path / "none.pth")
    with pytest.raises(ValueError, match="Valid: essentia, librosa"):
        AisfxEncoder(frontend="kaldi")


def test_category_heads_match_original_classifiers(original):
    """AisfxCategories reproduces aisfx's own CrossNet heads: per-library softmax of fc[i]."""
    from soundseek.encoders.aisfx import AisfxCategories

    cats = AisfxCategories.from_pretrained()
    hidden = AisfxCategories.from_pretrained(output="hidden")
    emb = torch.rand(4, 512, generator=torch.Generator().manual_seed(1)) * 3
    names = sorted(original.ds_dict, key=lambda k: int(original.ds_dict[k][0]))
    with torch.no_grad():
        ref = torch.cat([original.fc[original.getDatasetIdx(n)](emb).softmax(-1) for n in names], dim=-1)
        ref_hidden = torch.cat([original.fc[original.getDatasetIdx(n)][:4](emb) for n in names], dim=-1)
        ours, ours_hidden = cats(emb), hidden(emb)
    assert ours.shape == (4, 378) and cats.out_dim == 378 and hidden.out_dim == 9 * 128
    assert (ours - ref).abs().max() < 1e-6 and (ours_hidden - ref_hidden).abs().max() < 1e-5
    assert all(b.requires_grad is False for b in cats.buffers())
    with pytest.raises(ValueError, match=r"expects \(B, 512\)"):
        cats(torch.zeros(2, 10))
    with pytest.raises(ValueError, match="Valid: probs, hidden"):
        AisfxCategories(output="logits")


def test_category_heads_refuse_checkpoint_without_heads(tmp_path):
    from soundseek.encoders.aisfx import AisfxCategories

    sd, ds = torch.load(AisfxEncoder.default_checkpoint(), map_location="cpu", weights_only=False)
    bad = tmp_path / "no-heads.pth"
    torch.save(({k: v for k, v in sd.items() if not k.startswith("fc.3.")}, ds), bad)
    with pytest.raises(CheckpointError, match="fc.3.0.weight is missing"):
        AisfxCategories.from_pretrained(bad)
    torch.save(sd, tmp_path / "bare.pth")
    with pytest.raises(CheckpointError, match="expected \\(state_dict, datasets\\)"):
        AisfxCategories.from_pretrained(tmp_path / "bare.pth")


def test_global_scorer_with_categories_appends_them_to_the_pooled_vector():
    from soundseek.pooling import masked_max
    from soundseek.scoring.global_ import GlobalScorer

    torch.manual_seed(0)
    s = GlobalScorer(512, 8, 16, categories="aisfx-probs").eval()
    frames = torch.rand(3, 6, 512)
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], dtype=torch.bool)
    frames[1, 4:] = 1e6  # padding must not reach the max that feeds the heads
    with torch.no_grad():
        got = s.encode_audio(frames, mask)["emb"]
        pooled = s.pool(frames, mask)
        want = s.audio_head(torch.cat([pooled, s.categories(masked_max(frames, mask))], dim=-1))
        alone = s.encode_audio(frames[1:2, :4], None)["emb"]
    assert s.audio_head.in_dim == 512 + 378
    assert torch.allclose(got, want) and torch.allclose(got[1:2], alone, atol=1e-6)
    assert {k for k in s.state_dict() if k.startswith("categories.")}  # saved with the model
    assert not any(n.startswith("categories.") for n, _ in s.named_parameters())  # never trained
    with pytest.raises(ValueError, match="needs 512-d aisfx frames"):
        GlobalScorer(64, 8, 16, categories="aisfx-hidden")
    with pytest.raises(ValueError, match="Valid: aisfx-probs, aisfx-hidden"):
        GlobalScorer(512, 8, 16, categories="panns")
