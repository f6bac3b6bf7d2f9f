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
