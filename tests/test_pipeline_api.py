"""The Python API of the Pipeline: strings vs lists, paths vs arrays, sample rates, clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf


@pytest.fixture(scope="module")
def pipe():
    from soundseek.pipeline import Pipeline

    return Pipeline.load("default")


def test_a_string_is_one_caption_not_characters(pipe):
    one = pipe.embed_text("a dog barking")
    many = pipe.embed_text(["a dog barking", "rain"])
    assert one.shape == (pipe.dim,) and many.shape == (2, pipe.dim)
    np.testing.assert_allclose(one, many[0], atol=1e-5)
    assert pipe.embed_text([]).shape == (0, pipe.dim)
    for bad in (b"bytes", 3, ["ok", 4], None):
        with pytest.raises(TypeError, match="embed_text expects"):
            pipe.embed_text(bad)


def test_paths_and_arrays_at_any_rate_embed_alike(pipe, tmp_path):
    sr = 22050
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-3 * t)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", x, sr, subtype="FLOAT")
    from_path, _ = pipe.embed_audio([tmp_path / "tone.wav"])
    from_array, frames = pipe.embed_audio([x], sr=sr)
    single, _ = pipe.embed_audio(str(tmp_path / "tone.wav"))
    assert from_path.shape == (1, pipe.dim) and single.shape == (pipe.dim,) and len(frames) == 1
    np.testing.assert_allclose(from_path, from_array, atol=1e-4)
    np.testing.assert_allclose(single, from_path[0], atol=1e-6)


@pytest.mark.parametrize("bad,err,match", [
    ([np.zeros((2, 100), np.float32)], ValueError, "mono"),
    ([np.zeros(0, np.float32)], ValueError, "empty"),
    ([{"a": 1}], TypeError, "path or a numeric waveform"),
    (b"RIFF", TypeError, "file paths or waveforms"),
])
def test_bad_audio_inputs_are_clear_errors(pipe, bad, err, match):
    with pytest.raises(err, match=match):
        pipe.embed_audio(bad)


def test_bad_sample_rate(pipe):
    with pytest.raises(ValueError, match="sr must be a positive integer"):
        pipe.embed_audio([np.zeros(100, np.float32)], sr=0)
