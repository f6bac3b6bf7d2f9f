"""The synthetic demo corpus: determinism, idempotence, splits, captions tied to the audio."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.data.synthetic import EVENTS, make_synthetic_corpus


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_deterministic_and_seed_dependent(tmp_path: Path) -> None:
    a = make_synthetic_corpus(tmp_path / "a", n_clips=30, seed=3)
    b = make_synthetic_corpus(tmp_path / "b", n_clips=30, seed=3)
    c = make_synthetic_corpus(tmp_path / "c", n_clips=30, seed=4)
    da, db, dc = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert da == db and len(da) == 32  # 30 wavs + manifest + spec
    assert sum(da[k] != dc[k] for k in da if k.endswith(".wav")) == 30
    assert [x.captions for x in a] == [x.captions for x in b] != [x.captions for x in c]
    assert a.name == "synthetic" and not a.problems


def test_idempotent_reuse(tmp_path: Path) -> None:
    make_synthetic_corpus(tmp_path, n_clips=10, seed=0)
    before = digest(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.wav")}
    (tmp_path / "audio" / "00004.wav").unlink()
    corpus = make_synthetic_corpus(tmp_path, n_clips=10, seed=0)
    assert digest(tmp_path) == before and len(corpus) == 10
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if p.name != "00004.wav")
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    make_synthetic_corpus(tmp_path, n_clips=10, seed=1)  # other args: files rewritten
    assert digest(tmp_path) != before


def test_content(tmp_path: Path) -> None:
    corpus = make_synthetic_corpus(tmp_path, n_clips=200, seed=0, sample_rate=16000)
    counts = {s: len(corpus.split(s)) for s in corpus.splits}
    assert counts == {"train": 140, "val": 30, "test": 30}
    assert len({x.id for x in corpus}) == 200
    nouns = {t: [form for pair in EVENTS[t][0] for form in pair if form] for t in EVENTS}
    for clip in corpus:
        info = sf.info(str(clip.audio))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert 1.0 <= info.duration <= 4.0 and abs(info.duration - clip.duration) < 1e-3
        assert 2 <= len(clip.captions) <= 5 and len(set(clip.captions)) == len(clip.captions)
        events = clip.meta["events"]
        assert sorted({e["type"] for e in events}) == clip.tags
        for cap in clip.captions:
            for e in events:  # every segment's type is named in every caption, with its count
                assert any(re.search(rf"\b{n}\b", cap.lower()) for n in nouns[e["type"]]), (cap, e)
                if e["count"] > 1:
                    word = {2: "(two|pair|couple)", 3: "three", 4: "four"}[e["count"]]
                    assert re.search(rf"\b{word}\b", cap.lower()), (cap, e)
        x, _ = sf.read(str(clip.audio))
        for e in events:  # loud segments are louder than quiet ones
            seg = x[int(e["onset"] * 16000): int(e["offset"] * 16000)]
            peak = np.abs(seg).max()
            assert {"loud": 0.85 < peak, "normal": 0.3 < peak < 0.4, "quiet": 0.06 < peak < 0.1}[e["loudness"]]


def test_bad_args(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sample_rate must be >= 8000"):
        make_synthetic_corpus(tmp_path, n_clips=2, sample_rate=4000)
    with pytest.raises(ValueError, match="sum to 1"):
        make_synthetic_corpus(tmp_path, n_clips=2, fractions={"train": 0.5})


def test_fast(tmp_path: Path) -> None:
    import time

    t = time.perf_counter()
    make_synthetic_corpus(tmp_path, n_clips=300, seed=0)
    assert time.perf_counter() - t < 10.0
