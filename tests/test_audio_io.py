"""Decoding robustness, resampling, crop/pad, segmentation and batching (METHODS.md §2)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from soundseek.audio import (
    AudioDecodeError,
    audio_info,
    batch_waves,
    crop_or_pad,
    load_audio,
    resample,
    segment,
)

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000]
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"


def sine(sr: int, seconds: float, freq: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int, **kw) -> Path:
    sf.write(str(path), x, sr, **kw)
    return path


# ---------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    with pytest.raises(AudioDecodeError, match=r"nope\.wav.*file not found"):
        load_audio(tmp_path / "nope.wav", 16000)
    with pytest.raises(AudioDecodeError, match="file not found"):
        audio_info(tmp_path / "nope.wav")


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(AudioDecodeError, match="not a regular file"):
        load_audio(tmp_path, 16000)


def test_text_renamed_wav(tmp_path):
    p = tmp_path / "text.wav"
    p.write_text("this is not audio at all\n" * 20)
    with pytest.raises(AudioDecodeError, match=r"text\.wav.*unreadable") as ei:
        load_audio(p, 16000)
    assert isinstance(ei.value, ValueError) and ei.value.path == p
    with pytest.raises(AudioDecodeError, match="unreadable"):
        audio_info(p)


def test_random_bytes_and_zero_bytes(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "junk.flac"
    p.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(AudioDecodeError, match="junk.flac"):
        load_audio(p, 16000)
    q = tmp_path / "zero.wav"
    q.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="zero.wav"):
        load_audio(q, 16000)


def test_corrupt_payload_never_crashes_otherwise(tmp_path):
    """Garbage after a valid header: either a clean AudioDecodeError or finite audio."""
    rng = np.random.default_rng(1)
    for fmt in ("flac", "ogg", "wav"):
        p = write(tmp_path / f"c.{fmt}", sine(16000, 1.0), 16000)
        raw = bytearray(p.read_bytes())
        raw[200:] = rng.integers(0, 256, len(raw) - 200, dtype=np.uint8).tobytes()
        p.write_bytes(bytes(raw))
        try:
            y = load_audio(p, 16000, nonfinite="zero")
        except AudioDecodeError as e:
            assert "c." + fmt in str(e)
        else:
            assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()


def test_empty_wav(tmp_path):
    p = write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    assert audio_info(p).frames == 0
    with pytest.raises(AudioDecodeError, match="no audio frames"):
        load_audio(p, 16000)


def test_nan_samples(tmp_path):
    x = sine(16000, 0.5)
    x[100], x[200] = np.nan, np.inf
    p = write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(AudioDecodeError, match="2 non-finite"):
        load_audio(p, 16000)
    with pytest.warns(RuntimeWarning, match="replaced 2 non-finite"):
        y = load_audio(p, 16000, nonfinite="zero")
    assert np.isfinite(y).all() and y[100] == 0 and y[200] == 0
    np.testing.assert_allclose(y[:100], x[:100])
    with pytest.raises(ValueError, match="Valid: error, zero"):
        load_audio(p, 16000, nonfinite="drop")  # type: ignore[arg-type]


def test_bad_arguments(tmp_path):
    p = write(tmp_path / "a.wav", sine(16000, 0.1), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        load_audio(p, 0)
    with pytest.raises(ValueError, match="max_seconds"):
        load_audio(p, 16000, max_seconds=0)
    with pytest.raises(ValueError, match="offset"):
        load_audio(p, 16000, offset=-1)
    with pytest.raises(AudioDecodeError, match="past the end"):
        load_audio(p, 16000, offset=5.0)


# ---------------------------------------------------------------- degenerate content
def test_silent_and_one_sample(tmp_path):
    p = write(tmp_path / "silent.wav", np.zeros(8000, np.float32), 8000)
    y = load_audio(p, 32000)
    assert y.shape == (32000,) and not y.any()
    q = write(tmp_path / "one.wav", np.array([0.5], np.float32), 8000, subtype="FLOAT")
    y1 = load_audio(q, 32000)
    assert y1.shape == (4,) and np.isfinite(y1).all()
    assert load_audio(q, 8000).tolist() == [0.5]
    wave, mask = batch_waves([y1, y])
    assert wave.shape == (2, 32000) and mask[0].sum() == 4 and mask[1].all()


# ---------------------------------------------------------------- formats, channels, rates
@pytest.mark.parametrize("sr", RATES)
def test_every_rate_to_32k(tmp_path, sr):
    p = write(tmp_path / f"s{sr}.wav", sine(sr, 0.25, 440.0), sr, subtype="FLOAT")
    info = audio_info(p)
    assert info.sample_rate == sr and info.format == "WAV" and info.channels == 1
    assert info.duration == pytest.approx(0.25, abs=1 / sr)
    y = load_audio(p, 32000)
    n = int(round(sr * 0.25))
    assert y.dtype == np.float32 and y.shape == (math.ceil(n * 32000 / sr),)
    ref = sine(32000, 1.0)[: y.shape[0]]
    inner = slice(400, -400)  # the polyphase filter's edge effects
    assert np.abs(y[inner] - ref[inner]).max() < 2e-3


@pytest.mark.parametrize("sr_out", RATES)
def test_44k_to_every_rate(tmp_path, sr_out):
    p = write(tmp_path / "s.flac", sine(44100, 0.25, 300.0), 44100)
    y = load_audio(p, sr_out)
    assert y.shape == (math.ceil(round(44100 * 0.25) * sr_out / 44100),)
    ref = sine(sr_out, 1.0, 300.0)[: y.shape[0]]
    e = int(0.01 * sr_out)
    assert np.abs(y[e:-e] - ref[e:-e]).max() < 2e-3


def test_native_rate_fast_path_is_exact(tmp_path):
    x = sine(22050, 0.3)
    p = write(tmp_path / "f.wav", x, 22050, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(p, 22050), x)
    assert resample(x, 16000, 16000) is x


@pytest.mark.parametrize("subtype, tol", [("PCM_16", 1 / 2**15), ("PCM_24", 1 / 2**23), ("FLOAT", 0.0),
                                          ("PCM_U8", 1 / 2**7)])
def test_sample_formats(tmp_path, subtype, tol):
    x = sine(16000, 0.2)
    p = write(tmp_path / f"{subtype}.wav", x, 16000, subtype=subtype)
    y = load_audio(p, 16000)
    assert np.abs(y - x).max() <= tol + 1e-7


@pytest.mark.parametrize("ext, fmt, subtype, lossy", [
    ("flac", "FLAC", "PCM_16", False), ("ogg", "OGG", "VORBIS", True), ("opus", "OGG", "OPUS", True),
    ("aiff", "AIFF", "PCM_16", False), ("mp3", "MP3", "MPEG_LAYER_III", True)])
def test_containers(tmp_path, ext, fmt, subtype, lossy):
    if fmt not in sf.available_formats() or not sf.check_format(fmt, subtype):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}")
    sr = 48000 if subtype == "OPUS" else 16000
    x = sine(sr, 1.0, 440.0)
    p = write(tmp_path / f"x.{ext}", x, sr, format=fmt, subtype=subtype)
    assert audio_info(p).format == fmt
    y = load_audio(p, 16000)
    ref = resample(x, sr, 16000)
    if not lossy:
        assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-4
    else:  # encoder delay/padding: compare energy and spectrum peak
        assert abs(y.shape[0] - 16000) < 0.1 * 16000
        assert np.sqrt(np.mean(y**2)) == pytest.approx(np.sqrt(np.mean(ref**2)), rel=0.1)
        peak_hz = np.argmax(np.abs(np.fft.rfft(y))) * 16000 / y.shape[0]
        assert abs(peak_hz - 440.0) < 5.0


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_downmix(tmp_path, channels):
    rng = np.random.default_rng(channels)
    x = (rng.uniform(-0.5, 0.5, (8000, channels))).astype(np.float32)
    p = write(tmp_path / f"c{channels}.wav", x, 8000, subtype="FLOAT")
    assert audio_info(p).channels == channels
    np.testing.assert_allclose(load_audio(p, 8000), x.mean(axis=1), atol=1e-7)
    multi = load_audio(p, 8000, mono=False)
    assert multi.shape == (channels, 8000)
    np.testing.assert_array_equal(multi, x.T)
    # down-mix then resample == resample each channel then mix (both linear)
    np.testing.assert_allclose(load_audio(p, 16000), load_audio(p, 16000, mono=False).mean(0), atol=1e-6)


# ---------------------------------------------------------------- partial reads
def test_long_file_reads_only_what_it_keeps(tmp_path, monkeypatch):
    sr = 8000
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(sr * 600) * 0.1).clip(-1, 1).astype(np.float32)  # 10 min
    p = write(tmp_path / "long.wav", x, sr, subtype="PCM_16")
    full = sf.read(str(p), dtype="float32")[0]
    asked: list[int] = []
    orig = sf.SoundFile.read

    def spy(self, frames=-1, *a, **kw):
        asked.append(frames)
        return orig(self, frames, *a, **kw)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    y = load_audio(p, sr, max_seconds=10.0)
    assert y.shape == (80000,) and 0 < asked[-1] <= 80000 + 1000
    np.testing.assert_array_equal(y, full[:80000])
    y2 = load_audio(p, sr, max_seconds=2.0, offset=300.0)
    np.testing.assert_array_equal(y2, full[300 * sr: 302 * sr])
    y3 = load_audio(p, 16000, max_seconds=1.0)
    assert y3.shape == (16000,)
    # the cut is not a boundary for the filter: equal to resampling a longer piece
    np.testing.assert_allclose(y3, resample(full[:16000], sr, 16000)[:16000], atol=1e-5)


# ---------------------------------------------------------------- crop / pad / segment / batch
@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_crop_or_pad(lib):
    x = np.arange(10, dtype=np.float32).reshape(1, 10).repeat(2, 0)  # (2, 10)
    xx = torch.from_numpy(x) if lib == "torch" else x
    out, mask = crop_or_pad(xx, 15)
    assert out.shape == (2, 15) and mask.tolist() == [True] * 10 + [False] * 5
    assert np.asarray(out)[:, 10:].sum() == 0 and np.asarray(out)[:, :10].tolist() == x.tolist()
    out, mask = crop_or_pad(xx, 4)
    assert np.asarray(out).tolist() == x[:, :4].tolist() and bool(mask.all())
    gen = torch.Generator().manual_seed(0) if lib == "torch" else np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        out, _ = crop_or_pad(xx, 4, random=True, generator=gen)
        s = int(np.asarray(out)[0, 0])
        assert np.asarray(out)[0].tolist() == list(range(s, s + 4))
        starts.add(s)
    assert starts == set(range(7))  # every offset 0..6 reachable
    g1 = torch.Generator().manual_seed(5) if lib == "torch" else np.random.default_rng(5)
    g2 = torch.Generator().manual_seed(5) if lib == "torch" else np.random.default_rng(5)
    a = [np.asarray(crop_or_pad(xx, 3, True, g1)[0]).tolist() for _ in range(5)]
    b = [np.asarray(crop_or_pad(xx, 3, True, g2)[0]).tolist() for _ in range(5)]
    assert a == b
    with pytest.raises(ValueError, match="length must be >= 1"):
        crop_or_pad(xx, 0)


def _segment_reference(x: np.ndarray, seg: int, step: int):
    segs, masks, s = [], [], 0
    while True:
        piece = x[s:s + seg]
        segs.append(np.concatenate([piece, np.zeros(seg - len(piece), x.dtype)]))
        masks.append(np.arange(seg) < len(piece))
        if s + seg >= len(x):
            return np.stack(segs), np.stack(masks)
        s += step


@pytest.mark.parametrize("n, seconds, hop", [(1, 1.0, None), (100, 1.0, None), (250, 1.0, None),
                                             (300, 1.0, None), (301, 1.0, 0.5), (1000, 1.0, 0.3)])
def test_segment_matches_loop(n, seconds, hop):
    x = np.arange(1, n + 1, dtype=np.float32)
    segs, mask = segment(x, 100, seconds, hop)
    ref_s, ref_m = _segment_reference(x, 100, 100 if hop is None else int(round(hop * 100)))
    np.testing.assert_array_equal(segs, ref_s)
    np.testing.assert_array_equal(mask, ref_m)
    assert set(segs[mask].tolist()) == set(x.tolist())  # every sample covered
    ts, tm = segment(torch.from_numpy(x), 100, seconds, hop)
    np.testing.assert_array_equal(ts.numpy(), ref_s)
    np.testing.assert_array_equal(tm.numpy(), ref_m)


def test_segment_errors():
    with pytest.raises(ValueError, match="1-D"):
        segment(np.zeros((2, 10)), 10)
    with pytest.raises(ValueError, match="must not exceed"):
        segment(np.zeros(10), 10, 1.0, 2.0)


def test_batch_waves_matches_loop():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) for n in (5, 0, 12, 1)]
    w, m = batch_waves(waves)
    assert w.shape == (4, 12) and w.dtype == torch.float32 and m.dtype == torch.bool
    for i, x in enumerate(waves):
        assert m[i].sum() == len(x) and torch.equal(w[i, :len(x)], torch.from_numpy(x))
        assert not w[i, len(x):].any()
    w, m = batch_waves(waves + [torch.ones(3)], max_len=4)
    assert w.shape == (5, 4) and m.sum(1).tolist() == [4, 0, 4, 1, 3]
    assert torch.equal(w[2], torch.from_numpy(waves[2][:4]))
    w, m = batch_waves([np.zeros(0, np.float32)])
    assert w.shape == (1, 1) and not m.any()
    with pytest.raises(ValueError, match="at least one"):
        batch_waves([])
    with pytest.raises(ValueError, match="1-D"):
        batch_waves([np.zeros((2, 3))])


# ---------------------------------------------------------------- real data
def test_decode_every_real_file():
    """All 463 real clips (flac/ogg/oga/wav, 8-96 kHz, mono/stereo) decode; ~2 s."""
    audio = REAL / "audio"
    if not audio.is_dir():
        pytest.skip(f"{audio} absent")
    files = sorted(p for p in audio.rglob("*") if p.is_file())
    assert len(files) > 400
    for p in files:
        info = audio_info(p)
        y = load_audio(p, 32000)
        assert y.dtype == np.float32 and y.ndim == 1 and np.isfinite(y).all()
        assert abs(y.shape[0] - info.duration * 32000) <= 2, p



@pytest.mark.parametrize("ext", ["flac", "ogg", "mp3"])
def test_offset_window_in_compressed_formats(tmp_path, ext):
    """A seeked, bounded read equals the same window of a full decode (same decoder)."""
    sr = 16000
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(sr * 3) * 0.1).astype(np.float32)
    p = write(tmp_path / f"w.{ext}", x, sr)
    full = load_audio(p, sr)
    part = load_audio(p, sr, max_seconds=0.5, offset=1.25)
    assert part.shape == (8000,)
    np.testing.assert_allclose(part, full[20000:28000], atol=1e-6)
