"""check_corpus: counts, duration stats, probing of corrupt/empty audio, report output, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.data.check import check_corpus
from soundseek.data.cli import main as data_main
from soundseek.data.formats import load_corpus
from soundseek.data.types import Clip, Corpus, Problem


def _wav(path: Path, seconds: float, sr: int = 8000, channels: int = 1, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.zeros((int(seconds * sr), channels), dtype=np.float32)
    sf.write(str(path), x, sr, format=fmt)
    return path


def test_counts_and_probe_problems(tmp_path: Path) -> None:
    a = _wav(tmp_path / "a.wav", 1.0)
    b = _wav(tmp_path / "b.flac", 3.0, sr=16000, channels=2, fmt="FLAC")
    c = _wav(tmp_path / "c.wav", 2.0)
    empty = _wav(tmp_path / "empty.wav", 0.0)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00garbage" * 3)
    clips = [Clip("a", a, ["x", "y"], "train", duration=1.0), Clip("b", b, ["z"], "train"),
             Clip("c", c, [], "test", duration=5.0), Clip("e", empty, ["q"], "test"), Clip("k", corrupt, ["w"], None),
             Clip("a", a, ["dup"], "train")]
    corpus = Corpus("t", clips, [Problem("warning", "f.csv:3", "empty caption 2; skipped")])
    r = check_corpus(corpus, progress=False)
    assert r.n_clips == 6 and r.n_captions == 6
    assert r.per_split == {"(none)": {"clips": 1, "captions": 1}, "test": {"clips": 2, "captions": 1},
                           "train": {"clips": 3, "captions": 4}}
    assert r.captions_per_clip == {0: 1, 1: 4, 2: 1}
    durs = [1.0, 3.0, 2.0, 1.0]  # the readable files (a twice)
    assert r.duration == pytest.approx({"total": sum(durs), "min": 1.0, "median": float(np.median(durs)), "max": 3.0})
    assert r.formats == {"WAV": 3, "FLAC": 1} and r.sample_rates == {8000: 3, 16000: 1} and r.channels == {1: 3, 2: 1}
    text = "\n".join(map(str, r.problems))
    assert "empty audio (0 frames)" in text and "empty.wav" in text
    assert "unreadable or corrupt audio" in text and "corrupt.wav" in text
    assert "duplicate clip id" in text
    assert "stated duration 5.00 s but the file lasts 2.00 s" in text
    assert "empty caption 2" in text  # the reader's problems are kept
    assert not r.ok and r.n_errors == 3 and r.n_warnings == 2
    d = json.loads(r.to_json())
    assert d["ok"] is False and d["clips"] == 6 and len(d["problems"]) == 5 and d["sample_rates"] == {"8000": 3,
                                                                                                      "16000": 1}
    assert "FAILED: 3 errors, 2 warnings" in r.to_text() and "split train: 3 clips, 4 captions" in r.to_text()


def test_no_probe(tmp_path: Path) -> None:
    corpus = Corpus("t", [Clip("a", tmp_path / "a.ogg", ["x"], duration=2.0), Clip("b", tmp_path / "b.wav", ["y"])])
    r = check_corpus(corpus, probe_audio=False)
    assert r.ok and r.formats == {"ogg": 1, "wav": 1} and r.duration["total"] == 2.0 and r.sample_rates == {}


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _wav(tmp_path / "ok" / "a.wav", 0.5)
    assert data_main(["data", "check", str(tmp_path / "ok"), "--quiet"]) == 0
    assert "OK: 0 errors" in capsys.readouterr().out
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.wav").write_bytes(b"not audio")
    assert data_main(["data", "check", str(tmp_path / "bad"), "--json", "--quiet"]) == 1
    assert json.loads(capsys.readouterr().out)["errors"] == 1
    assert data_main(["data", "check", str(tmp_path / "missing"), "--quiet"]) == 2


def test_real_sfx_dev() -> None:
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"
    if not (root / "manifest.jsonl").is_file():
        pytest.skip("real-sfx-dev not present")
    r = check_corpus(load_corpus(root / "manifest.jsonl", "manifest"), progress=False)
    assert r.n_clips == 463 and r.ok and not r.problems, r.to_text()
    assert sum(r.formats.values()) == 463 and set(r.formats) <= {"OGG", "FLAC", "WAV"}
    assert 0 < r.duration["min"] < r.duration["median"] < r.duration["max"]
