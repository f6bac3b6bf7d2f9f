"""Mel filterbank vs librosa, LogMel vs a slow numpy reference (METHODS.md §2)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from soundseek.audio import LogMel, aisfx_logmel, batch_waves, frame_mask, mel_filterbank, panns_logmel

FB_CASES = [
    dict(sr=32000, n_fft=1024, n_mels=64, fmin=50.0, fmax=14000.0),  # PANNs
    dict(sr=44100, n_fft=2048, n_mels=96, fmin=0.0, fmax=22050.0, norm=1.0, htk=True),  # aisfx
    dict(sr=16000, n_fft=400, n_mels=80, fmin=0.0, fmax=None),
    dict(sr=22050, n_fft=512, n_mels=40, fmin=20.0, fmax=8000.0, norm=None),
    dict(sr=48000, n_fft=2048, n_mels=128, fmin=0.0, fmax=24000.0, htk=True),
    dict(sr=8000, n_fft=256, n_mels=32, fmin=100.0, fmax=3800.0, norm=2.0),
]


def numpy_logmel(x: np.ndarray, sr, n_fft, hop, win, n_mels, fmin, fmax, power=2.0, center=True,
                 pad_mode="reflect", norm="slaney", htk=False, log="db", amin=1e-10, offset=0.0, scale=1.0):
    """Slow obvious reference: explicit framing + np.fft.rfft + filterbank + log, float64."""
    x = np.asarray(x, np.float64)
    if center:
        x = np.pad(x, n_fft // 2, mode=pad_mode)
    elif len(x) < n_fft:
        x = np.pad(x, (0, n_fft - len(x)))
    # periodic Hann, rounded to float32 like the module's buffer
    w = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)).astype(np.float32).astype(np.float64)
    left = (n_fft - win) // 2
    window = np.zeros(n_fft)
    window[left:left + win] = w
    n_frames = 1 + (len(x) - n_fft) // hop
    frames = []
    for t in range(n_frames):
        spec = np.fft.rfft(x[t * hop: t * hop + n_fft] * window)
        frames.append(np.abs(spec) ** power)
    s = np.stack(frames)  # (T, F)
    # the module stores its filterbank in float32 (as librosa does), so does the reference
    mel = s @ mel_filterbank(sr, n_fft, n_mels, fmin, fmax, norm=norm, htk=htk).astype(np.float64).T
    if log == "db":
        return 10 * np.log10(np.maximum(mel, amin))
    if log == "log10":
        return np.log10(np.maximum(mel * scale + offset, amin))
    if log == "ln":
        return np.log(np.maximum(mel * scale + offset, amin))
    return mel


@pytest.mark.parametrize("case", FB_CASES)
def test_filterbank_matches_librosa(case):
    librosa = pytest.importorskip("librosa")
    ours = mel_filterbank(**case)
    ref = librosa.filters.mel(**case)
    assert ours.shape == ref.shape == (case["n_mels"], case["n_fft"] // 2 + 1)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)


def test_filterbank_properties():
    fb = mel_filterbank(32000, 1024, 64, 50, 14000, norm=None)
    assert fb.max() <= 1.0 + 1e-6 and (fb >= 0).all() and (fb.max(1) > 0.5).all()
    freqs = np.fft.rfftfreq(1024, 1 / 32000)
    assert not fb[:, (freqs < 50) | (freqs > 14000)].any()  # nothing outside the band
    peaks = fb.argmax(1)
    assert (np.diff(peaks) >= 0).all()  # bands in increasing order
    with pytest.raises(ValueError, match="Valid: 'slaney', None"):
        mel_filterbank(16000, 512, 40, norm="area")
    with pytest.raises(ValueError, match="fmin < fmax"):
        mel_filterbank(16000, 512, 40, fmin=9000, fmax=8000)
    with pytest.warns(UserWarning, match="Empty mel filters"):
        mel_filterbank(8000, 64, 128)


LM_CASES = [
    dict(sr=32000, n_fft=1024, hop=320, win=1024, n_mels=64, fmin=50.0, fmax=14000.0),
    dict(sr=16000, n_fft=512, hop=160, win=400, n_mels=40, fmin=0.0, fmax=8000.0, log="ln", offset=1e-6),
    dict(sr=44100, n_fft=2048, hop=1024, win=2048, n_mels=96, fmin=0.0, fmax=22050.0, norm=1.0, htk=True,
         pad_mode="constant", log="log10", offset=1.0, scale=1e4),
    dict(sr=8000, n_fft=256, hop=100, win=256, n_mels=32, fmin=0.0, fmax=4000.0, power=1.0, center=False,
         log="none"),
]


def _module(c: dict) -> LogMel:
    return LogMel(c["sr"], c["n_fft"], c["hop"], c["win"], c["n_mels"], c["fmin"], c["fmax"],
                  power=c.get("power", 2.0), center=c.get("center", True), pad_mode=c.get("pad_mode", "reflect"),
                  mel_norm=c.get("norm", "slaney"), htk=c.get("htk", False), log=c.get("log", "db"),
                  log_offset=c.get("offset", 0.0), log_scale=c.get("scale", 1.0))


@pytest.mark.parametrize("case", LM_CASES)
def test_logmel_matches_numpy_reference(case):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5003)) * np.array([[0.3], [1e-3]])  # includes a quiet example
    m = _module(case)
    ref = np.stack([numpy_logmel(xi, **case) for xi in x])
    out64 = m.double()(torch.from_numpy(x)).numpy()
    assert out64.shape == ref.shape and out64.shape[1] == m.num_frames(5003)
    np.testing.assert_allclose(out64, ref, rtol=1e-8, atol=1e-8)
    out32 = m.float()(torch.from_numpy(x).float()).numpy()
    if case.get("log", "db") == "none":
        np.testing.assert_allclose(out32, ref, rtol=1e-3, atol=1e-5 * np.abs(ref).max())
    else:
        np.testing.assert_allclose(out32, ref, atol=2e-3 if case.get("log", "db") == "db" else 1e-3)


def test_panns_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(32000) * 0.1).astype(np.float32)
    ours = panns_logmel()(torch.from_numpy(x)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=32000, n_fft=1024, hop_length=320,
                                         win_length=1024, window="hann", center=True, pad_mode="reflect",
                                         power=2.0, n_mels=64, fmin=50, fmax=14000)
    ref = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T
    assert ours.shape == ref.shape == (101, 64)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_aisfx_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(2)
    x = (rng.standard_normal(44100) * 0.1).astype(np.float32)
    ours = aisfx_logmel()(torch.from_numpy(x)[None])[0].numpy()
    spec = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=44100, n_mels=96, norm=1.0, fmin=0.0,
                                          fmax=22050.0, htk=True, power=2.0, hop_length=1024, win_length=2048,
                                          pad_mode="constant")
    ref = np.log10(spec * 10000.0 + 1).T
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_batched_equals_loop_and_gradient():
    m = LogMel(16000, 256, 64, 200, 24, 0.0, 8000.0, log="ln", log_offset=1e-3).double()
    x = torch.randn(3, 700, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    batched = m(x)
    loop = torch.stack([m(xi[None])[0] for xi in x])
    torch.testing.assert_close(batched, loop)
    small = LogMel(8000, 64, 32, 64, 8, 0.0, 4000.0, log="ln", log_offset=1e-2).double()
    xs = torch.randn(2, 150, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(small, (xs,), fast_mode=True)


def test_top_db_and_silence():
    m = LogMel(16000, 512, 160, n_mels=40, top_db=80.0)
    x = torch.zeros(2, 16000)
    x[1, 8000] = 1.0
    out = m(x)
    assert torch.isfinite(out).all() and (out[0] == -100.0).all()  # silent: 10 log10(1e-10)
    assert out[1].max() - out[1].min() <= 80.0 + 1e-4
    db = panns_logmel()(torch.zeros(1, 3200))
    assert torch.equal(db, torch.full_like(db, -100.0))


def test_short_inputs_and_frame_counts():
    m = panns_logmel()
    for n in (1, 2, 300, 512, 513, 1024, 32000):
        out = m(torch.randn(1, n))
        assert out.shape == (1, 1 + n // 320, 64) and torch.isfinite(out).all()
    nc = LogMel(16000, 400, 160, center=False, n_mels=20)
    for n in (1, 399, 400, 401, 560, 16000):
        assert nc(torch.randn(1, n)).shape[1] == nc.num_frames(n) == 1 + max(0, n - 400) // 160


@pytest.mark.parametrize("center", [True, False])
def test_frame_mask_equals_unpadded_frames(center):
    m = LogMel(16000, 400, 160, n_mels=20, center=center, log="none")
    lengths = [1, 159, 160, 161, 400, 401, 1234, 2000]
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in lengths]
    wave, wmask = batch_waves(waves)
    fm = m.frame_mask(wmask)
    out = m(wave)
    assert fm.shape == out.shape[:2]
    for i, w in enumerate(waves):
        own = m(torch.from_numpy(w)[None])[0]
        assert int(fm[i].sum()) == own.shape[0] and bool(fm[i, :own.shape[0]].all())
    torch.testing.assert_close(fm, frame_mask(wmask, 160, 400, center))
    assert not m.frame_mask(torch.zeros(2, 1000, dtype=torch.bool)).any()


def test_frame_mask_valid_frames_unaffected_by_padding():
    """Frames well inside the valid part do not change when zeros are appended."""
    m = panns_logmel()
    x = torch.randn(1, 16000)
    padded, wmask = batch_waves([x[0], torch.randn(32000)])
    fm = m.frame_mask(wmask)
    own = m(x)[0]
    inner = own.shape[0] - 2  # the last frames' windows reach into the reflect/zero pad
    torch.testing.assert_close(m(padded)[0, :inner], own[:inner], atol=1e-3, rtol=1e-4)
    assert int(fm[0].sum()) == own.shape[0] == 51


def test_logmel_config_and_errors():
    m = panns_logmel()
    c = m.config()
    assert (c["sample_rate"], c["n_fft"], c["hop_length"], c["win_length"], c["n_mels"], c["fmin"],
            c["fmax"], c["log"]) == (32000, 1024, 320, 1024, 64, 50.0, 14000.0, "db")
    assert m.state_dict() == {}  # derived buffers stay out of checkpoints
    assert m.window.shape == (1024,) and m.mel_fb.shape == (513, 64)
    with pytest.raises(ValueError, match="Valid: db, ln, log10, none"):
        LogMel(log="log2")
    with pytest.raises(ValueError, match="Valid: reflect, constant"):
        LogMel(pad_mode="zeros")
    with pytest.raises(ValueError, match="win_length"):
        LogMel(n_fft=512, win_length=1024)
    with pytest.raises(ValueError, match=r"\(B, N\)"):
        m(torch.zeros(1, 2, 3))
