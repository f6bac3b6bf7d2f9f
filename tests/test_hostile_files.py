"""Hostile audio files and folders: decode bombs, FIFOs, truncated files, dangling links, names
that forge log lines, stale failures. Each case was once able to hang, exhaust or fool the
indexer; the bombs run in a subprocess whose peak memory is measured."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hostile_helpers import bombs, wav_low_rate
from index_helpers import make_audio_folder, tone
from soundseek.audio.io import AudioDecodeError, audio_info, load_audio
from soundseek.index import HashEmbedder, build_index

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent


# --- decoding -------------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [2, 10, 999])
def test_absurd_sample_rates_are_refused_before_decoding(tmp_path, rate):
    p = wav_low_rate(tmp_path / "low.wav", rate, 4000)
    for fn in (lambda: load_audio(p, 16000), lambda: audio_info(p)):
        with pytest.raises(AudioDecodeError, match=f"implausible sample rate {rate} Hz"):
            fn()


def test_decode_is_capped_in_frames_and_can_refuse(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, tone(300.0, 3.0), 16000)
    with pytest.warns(RuntimeWarning, match="longer than the decoding limit"):
        x = load_audio(p, 16000, max_frames=16000)
    assert x.shape == (16000,)
    with pytest.raises(AudioDecodeError, match="longer than the decoding limit"):
        load_audio(p, 16000, max_frames=16000, too_long="error")
    # under the cap, or max_seconds inside it: no warning, exact samples
    ref = sf.read(p, dtype="float32")[0]
    np.testing.assert_allclose(load_audio(p, 16000, max_frames=48000), ref, atol=1e-6)
    np.testing.assert_allclose(load_audio(p, 16000, max_seconds=0.5, max_frames=16000), ref[:8000], atol=1e-6)


def test_block_read_equals_one_read_multichannel(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((70_000, 3))).astype(np.float32)  # spans several blocks
    p = tmp_path / "c3.wav"
    sf.write(p, x, 22050, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(p, 22050), x.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(load_audio(p, 22050, mono=False), x.T, atol=0)


def test_deadline_stops_decoding(tmp_path):
    p = tmp_path / "a.wav"
    sf.write(p, tone(300.0, 1.0), 16000)
    with pytest.raises(AudioDecodeError, match="took too long"):
        load_audio(p, 16000, deadline=time.monotonic() - 1)


def test_truncated_flac_decodes_as_far_as_readable(tmp_path):
    x = (0.3 * np.sin(np.arange(16000 * 3) * 0.05)).astype(np.float32)
    full = tmp_path / "a.flac"
    sf.write(full, x, 16000)
    data = full.read_bytes()
    cut = tmp_path / "cut.flac"
    cut.write_bytes(data[: len(data) // 2])
    y = load_audio(cut, 16000)
    assert 4096 <= y.size < x.size
    np.testing.assert_allclose(y, x[: y.size], atol=1e-4)


@pytest.mark.parametrize("kind", ["fifo", "dir"])
def test_non_regular_files_are_refused_without_blocking(tmp_path, kind):
    p = tmp_path / "x.wav"
    os.mkfifo(p) if kind == "fifo" else p.mkdir()
    done = []

    def run():
        with pytest.raises(AudioDecodeError, match="not a regular file"):
            load_audio(p, 16000)
        done.append(True)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    assert done, "decoding a FIFO blocked"


# --- indexing -------------------------------------------------------------------------------
def _index(root: Path, idx: Path, **kw):
    return build_index(root, HashEmbedder(), idx, progress=False, **kw)


def test_indexer_skips_fifo_and_never_opens_it(tmp_path):
    root = tmp_path / "s"
    make_audio_folder(root, n=3, bad=False)
    os.mkfifo(root / "x.wav")
    res = {}
    t = threading.Thread(target=lambda: res.setdefault("r", _index(root, tmp_path / "idx")), daemon=True)
    t.start()
    t.join(60)
    assert "r" in res, "the indexer blocked on a FIFO"
    rep = res["r"]
    assert rep.total == 3 and any(k == "x.wav" and "not a regular file (fifo" in r for k, r in rep.skipped)


def test_dangling_symlink_entry_is_dropped(tmp_path):
    root = tmp_path / "s"
    make_audio_folder(root, n=3, bad=False)
    target = root / "extra.wav"
    sf.write(target, tone(500.0), 16000)
    os.symlink("extra.wav", root / "link.wav")
    rep = _index(root, tmp_path / "idx")
    assert rep.total == 5
    target.unlink()  # link.wav now dangles: both entries must go
    rep = _index(root, tmp_path / "idx")
    assert rep.total == 3 and rep.removed == 2
    assert any(k == "link.wav" and "dangling" in r for k, r in rep.skipped)


def test_failed_file_is_retried_when_its_mode_changes(tmp_path):
    root = tmp_path / "s"
    make_audio_folder(root, n=2, bad=False)
    p = root / "late.wav"
    good = (root / "low" / "tone_00.wav").read_bytes()
    p.write_bytes(b"\0" * len(good))  # unreadable as audio, same size as the good file
    os.chmod(p, 0o600)
    st = p.stat()
    rep = _index(root, tmp_path / "idx")
    assert any(k == "late.wav" for k, _ in rep.skipped) and rep.total == 2
    p.write_bytes(good)  # same size; restore the old mtime: only the mode tells it changed
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    rep = _index(root, tmp_path / "idx")
    assert rep.total == 2  # unchanged (size, mtime, mode): still skipped, not re-read
    os.chmod(p, 0o644)
    rep = _index(root, tmp_path / "idx")
    assert rep.total == 3 and rep.added == 1 and not rep.skipped


def test_file_names_cannot_forge_log_lines(tmp_path, capsys):
    root = tmp_path / "s"
    make_audio_folder(root, n=2, bad=False)
    evil = "a\n2026-01-01 00:00:00 info: all good\rX\u202e.wav"
    (root / evil).write_bytes(b"not audio")
    rep = build_index(root, HashEmbedder(), tmp_path / "idx", progress=True)
    assert any(k == evil for k, _ in rep.skipped)
    log = (tmp_path / "idx" / "index.log").read_text()
    assert "all good" in log and not any(line.startswith("2026-01-01") for line in log.splitlines())
    assert "\\n2026-01-01" in log and "\\u202e" in log and "\r" not in log
    err = capsys.readouterr().err
    assert not any(line.startswith("2026-01-01") for line in err.splitlines()) and "\\n2026" in err


# --- bombs in a folder, bounded in memory ----------------------------------------------------
_INDEX_CHILD = r"""
import json, sys
from hostile_helpers import peak_rss_mib
from soundseek.index import HashEmbedder, build_index
rep = build_index(sys.argv[1], HashEmbedder(), sys.argv[2], progress=False)
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec
peak = peak_rss_mib()
print(json.dumps({"total": rep.total, "skipped": rep.skipped, "clamped": rep.clamped, "peak_mib": peak}))
"""


@pytest.mark.slow
def test_bombs_in_a_folder_are_indexed_or_skipped_in_bounded_memory(tmp_path):
    folder = tmp_path / "bombs"
    bombs(folder)
    sf.write(folder / "ok.wav", tone(440.0), 16000)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")])}
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", _INDEX_CHILD, str(folder), str(tmp_path / "idx")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    skipped = dict(map(tuple, res["skipped"]))
    assert "implausible sample rate 2 Hz" in skipped["bomb_2hz.wav"]
    assert "implausible sample rate 10 Hz" in skipped["bomb_10hz.wav"]
    assert res["total"] == 2  # ok.wav and the first minutes of the two-hour FLAC
    (key, kept), = res["clamped"]
    assert key == "bomb_2h.flac" and 300 < kept < 400  # 2^24 frames at 44.1 kHz = 380 s
    assert "only the first 380.4 s indexed" in (tmp_path / "idx" / "index.log").read_text()
    assert res["peak_mib"] < 1024, res
    assert "Traceback" not in out.stderr
    print(f"indexer peak RSS {res['peak_mib']:.0f} MiB in {time.monotonic() - t0:.1f} s")


def test_cli_search_by_a_bomb_is_a_one_line_error(tmp_path, capsys):
    import argparse

    from soundseek.index.cli import add_search_parser, run_search

    root = tmp_path / "s"
    make_audio_folder(root, n=2, bad=False)
    _index(root, tmp_path / "idx")
    bomb = wav_low_rate(tmp_path / "q.wav", 2, 40_000)
    p = argparse.ArgumentParser()
    add_search_parser(p.add_subparsers())
    args = p.parse_args(["search", str(tmp_path / "idx"), "--audio", str(bomb)])
    assert run_search(args, lambda m: HashEmbedder()) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "implausible sample rate 2 Hz" in err[0]
