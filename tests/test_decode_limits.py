"""Decoding is bounded for uploads and for the indexer: frames (at most the cap, whatever the
file's rate), channels and rate from the header, wall time during decoding *and* resampling,
and concurrent upload decodes (503 + Retry-After beyond the queue) so text searches go on."""
from __future__ import annotations

import io
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from soundseek.audio.io import AudioDecodeError, load_audio, resample
from soundseek.service.limits import UploadGate, UploadLimits, UploadRefused, decode_upload


def _silence(path: Path, seconds: float, sr: int, channels: int = 1, fmt: str = "FLAC") -> Path:
    sf.write(path, np.zeros((int(seconds * sr), channels), np.float32), sr, format=fmt)
    return path


@pytest.mark.parametrize("sr_in, sr_out", [(655_350, 16_000), (44_100, 32_000), (8_000, 16_000)])
def test_blocked_resampling_equals_resample_poly(sr_in, sr_out):
    x = np.random.default_rng(0).standard_normal(1_300_003).astype(np.float32)
    ref = resample_poly(x, *(np.array([sr_out, sr_in]) // np.gcd(sr_in, sr_out)), axis=-1).astype(np.float32)
    got = resample(x, sr_in, sr_out, deadline=time.monotonic() + 600)
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-5


def test_the_time_limit_holds_during_resampling(tmp_path):
    with pytest.raises(TimeoutError):
        resample(np.zeros(2_000_000, np.float32), 655_350, 16_000, deadline=time.monotonic() - 1)
    p = _silence(tmp_path / "x.wav", 4.0, 96_000, fmt="WAV")
    import soundseek.audio.io as aio

    real = aio.resample_poly

    def slow_resample(*a, **k):  # decoding ends well before the deadline, resampling passes it
        time.sleep(1.5)
        return real(*a, **k)

    aio.resample_poly = slow_resample
    try:
        with pytest.raises(AudioDecodeError, match="took too long"):  # was: resampled to the end, no error
            load_audio(p, 16_000, deadline=time.monotonic() + 1.0)
    finally:
        aio.resample_poly = real


def test_upload_rate_and_channels_refused_from_the_header(tmp_path):
    lim = UploadLimits()
    with pytest.raises(UploadRefused) as e:  # was: 599 s at 655,350 Hz decoded (2.7 GB, 12.7 s)
        decode_upload(_silence(tmp_path / "hi.flac", 2.0, 655_350), 16_000, None, lim)
    assert e.value.status == 415 and "655350 Hz" in e.value.detail
    with pytest.raises(UploadRefused) as e:  # was: a 64-channel Ogg decoded for 7.9 s
        decode_upload(_silence(tmp_path / "many.wav", 0.1, 16_000, channels=64, fmt="WAV"), 16_000, None, lim)
    assert e.value.status == 415 and "64 channels" in e.value.detail


def test_upload_decodes_at_most_the_frame_cap(tmp_path):
    cap = 1 << 18
    lim = UploadLimits(max_frames=cap)
    p = _silence(tmp_path / "long.flac", 30.0, 96_000)  # 2.9 M frames, 11x the cap
    with pytest.raises(UploadRefused) as e:
        decode_upload(p, 16_000, None, lim)
    assert e.value.status == 413
    tracemalloc.start()
    try:
        wave = decode_upload(p, 16_000, 20.0, lim)  # the index keeps 20 s: cropped at the cap
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert wave.size <= cap * 16_000 // 96_000 + 16
    assert peak < 12 * 4 * cap, peak  # a few copies of the capped audio, not of 30 s at 96 kHz


def test_gate_bounds_concurrent_decodes():
    gate = UploadGate(concurrent=1, waiting=1)
    inside, release = threading.Event(), threading.Event()

    def work():
        inside.set()
        release.wait(10)
        return 1

    results = []
    threads = [threading.Thread(target=lambda: results.append(gate.run(work))) for _ in range(2)]
    threads[0].start()
    inside.wait(10)
    threads[1].start()
    for _ in range(100):
        if gate._admitted == 2:
            break
        time.sleep(0.01)
    with pytest.raises(UploadRefused) as e:
        gate.run(work)
    assert e.value.status == 503 and e.value.headers["Retry-After"]
    release.set()
    for t in threads:
        t.join()
    assert results == [1, 1]


def test_text_search_answers_while_uploads_decode(tmp_path, monkeypatch):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from index_helpers import make_audio_folder
    from soundseek.index import HashEmbedder, build_index
    from soundseek.service.app import create_app
    from soundseek.service.routes import search as app_module  # the upload route

    make_audio_folder(tmp_path / "s", n=4, bad=False)
    build_index(tmp_path / "s", HashEmbedder(), tmp_path / "idx", progress=False)
    inside, release = threading.Event(), threading.Event()
    real = app_module.decode_upload

    def slow_decode(*a, **k):
        inside.set()
        release.wait(20)
        return real(*a, **k)

    monkeypatch.setattr(app_module, "decode_upload", slow_decode)
    app = create_app(tmp_path / "idx", HashEmbedder(), model_workers=1,
                                upload_limits=UploadLimits(concurrent=1, waiting=0))
    buf = io.BytesIO()
    sf.write(buf, np.zeros(1600, np.float32), 16000, format="WAV")
    with TestClient(app) as c:
        first = []
        t = threading.Thread(target=lambda: first.append(
            c.post("/api/search/audio", files={"file": ("a.wav", buf.getvalue(), "audio/wav")})))
        t.start()
        assert inside.wait(20)
        assert c.get("/api/search", params={"q": "tone"}).status_code == 200  # not behind the decode
        r = c.post("/api/search/audio", files={"file": ("b.wav", buf.getvalue(), "audio/wav")})
        assert r.status_code == 503 and r.headers["retry-after"]
        release.set()
        t.join()
    assert first[0].status_code == 200


def test_indexer_per_file_limits_and_honest_reasons(tmp_path):
    from soundseek.index import HashEmbedder, build_index

    root = tmp_path / "s"
    root.mkdir()
    x = np.random.default_rng(0).standard_normal(16000 * 20).astype(np.float32) * 0.1
    sf.write(root / "full.flac", x, 16000)
    data = (root / "full.flac").read_bytes()
    (root / "cut.flac").write_bytes(data[: len(data) // 3])
    (root / "random.flac").write_bytes(np.random.default_rng(1).bytes(5000))
    _silence(root / "many.wav", 0.2, 16000, channels=64, fmt="WAV")
    rep = build_index(root, HashEmbedder(), tmp_path / "idx", progress=False)
    why = dict(rep.skipped)
    assert "64 channels" in why["many.wav"]  # was: decoded (54.5 s, 800 MB for a 174 KB Ogg)
    assert "pipe" not in why["random.flac"] and "not audio" in why["random.flac"]  # was "possibly a pipe?"
    assert [k for k, _ in rep.truncated] == ["cut.flac"] and not rep.clamped  # was "longer than the decoding limit"
