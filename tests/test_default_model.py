"""The model shipped in the package: loads offline, embeds, and indexes real sounds sensibly."""
from __future__ import annotations

import json

import numpy as np
import pytest

from soundseek.pipeline import DEFAULT_CHECKPOINT, Pipeline


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    return Pipeline.default()


def test_default_model_is_shipped_and_embeds(pipe):
    assert DEFAULT_CHECKPOINT.is_file()
    t = pipe.embed_text(["a dog barks", "glass breaking"])
    assert t.shape == (2, pipe.dim) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5)
    sr = pipe.sample_rate
    wave = np.sin(2 * np.pi * 440 * np.arange(sr) / sr).astype(np.float32)
    a, frames = pipe.embed_audio([wave, wave[: sr // 4]])
    assert a.shape == (2, pipe.dim) and len(frames) == 2 and frames[0].shape[0] > frames[1].shape[0]
    assert pipe.fingerprint() == Pipeline.default().fingerprint()


@pytest.mark.slow
def test_index_real_sounds_reports_exactly_the_bad_files(pipe, real_sfx, tmp_path):
    from soundseek.index import Searcher, build_index

    rows = [json.loads(l) for l in (real_sfx / "manifest.jsonl").read_text().splitlines()]
    for r in rows:
        r["audio"] = str(real_sfx / r["audio"])
    bad = {"corrupt.wav": b"RIFF\x10\x00\x00\x00WAVEfmt junk", "empty.flac": b"", "notes.ogg": b"plain text, not audio"}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        rows.append({"audio": name, "captions": [name]})
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    report = build_index(tmp_path / "manifest.jsonl", pipe, tmp_path / "index", progress=False, max_seconds=10)
    skipped = sorted(key.rsplit("/", 1)[-1] for key, _ in report.skipped)
    assert skipped == sorted(bad), report.skipped
    assert report.added == len(rows) - len(bad)
    hits = Searcher(tmp_path / "index", pipe).search_text("bass drum", k=5)
    assert any("drum" in " ".join(h["captions"]) for h in hits), hits
