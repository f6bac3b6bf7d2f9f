"""Checkpoints written before the towers moved into the model still load and embed the same.

``fixtures/default_model_reference.npz`` holds embeddings of real clips (each embedded on its
own) and captions, computed with the default model shipped when checkpoints held heads only
(``fixtures/default_v1.pt``, a copy of that file); the same vectors must come back within 1e-5.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REF = Path(__file__).parent / "fixtures" / "default_model_reference.npz"
V1 = Path(__file__).parent / "fixtures" / "default_v1.pt"  # the heads-only default model, version 1


@pytest.fixture(scope="module")
def pipe():
    from soundseek.pipeline import Pipeline

    return Pipeline.from_checkpoint(V1)


def test_default_checkpoint_gives_the_reference_embeddings(pipe, real_sfx):
    from soundseek.audio.io import load_audio

    ref = np.load(REF)
    for path, want in zip(ref["clips"], ref["audio"]):
        wave = load_audio(real_sfx / str(path), pipe.sample_rate, max_seconds=float(ref["max_seconds"]))
        got, _ = pipe.embed_audio([wave])
        np.testing.assert_allclose(got[0], want, atol=1e-5, err_msg=str(path))
    for cap, want in zip(ref["captions"], ref["text"]):
        np.testing.assert_allclose(pipe.embed_text([str(cap)])[0], want, atol=1e-5, err_msg=str(cap))
