"""Indexing (METHODS.md §8): robustness, incremental updates, crash safety, search, CLI."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index_helpers import make_audio_folder, tone, write_manifest
from soundseek.index import HashEmbedder, IndexMismatchError, Searcher, build_caption_index, build_index
from soundseek.index.cli import add_index_parser, add_search_parser, run_index, run_search

SRC = Path(__file__).resolve().parents[1] / "src"


def _rows(index_dir: Path) -> list[tuple]:
    con = sqlite3.connect(index_dir / "index.sqlite")
    rows = con.execute("SELECT id, key, sha1, embedding, frames_shape FROM items ORDER BY id").fetchall()
    con.close()
    return rows


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "sounds"
    freqs = make_audio_folder(root, n=12)
    return root, freqs


def test_build_skips_bad_files_and_reports(folder, tmp_path, capsys):
    root, freqs = folder
    outside = tmp_path / "secret.wav"
    outside.write_bytes((root / "low" / "tone_00.wav").read_bytes())
    os.symlink(outside, root / "planted.wav")  # points outside the folder
    rep = build_index(root, HashEmbedder(), tmp_path / "idx", batch_size=4, progress=True)
    assert rep.added == len(freqs) and rep.total == len(freqs)
    skipped = dict(rep.skipped)
    assert set(skipped) == {"empty.wav", "notaudio.wav", "truncated.flac", "planted.wav"}
    assert "outside" in skipped["planted.wav"]
    err = capsys.readouterr().err
    assert "Skipped 4 file(s)" in err and "notaudio.wav" in err
    log = (tmp_path / "idx" / "index.log").read_text()
    assert "skipped notaudio.wav" in log
    man = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert man["fingerprint"] == HashEmbedder().fingerprint() and man["dim"] == 64 and man["backend"] == "faiss"
    # query by example: each file finds itself first
    s = Searcher(tmp_path / "idx", HashEmbedder())
    for key in list(freqs)[:4]:
        hit = s.search_audio(root / key, k=1)[0]
        assert hit["path"] == key and hit["score"] == pytest.approx(1.0, abs=1e-5)
    assert s.audio_file(hit["id"]) == (root / key).absolute()


def test_incremental_update(folder, tmp_path):
    root, freqs = folder
    idx = tmp_path / "idx"
    build_index(root, HashEmbedder(), idx, progress=False)
    before = {r[1]: r for r in _rows(idx)}
    rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert (rep.added, rep.updated, rep.removed, rep.unchanged) == (0, 0, 0, len(freqs))
    assert len(rep.skipped) == 3  # the bad files are reported again without re-decoding
    import soundfile as sf

    (root / "high" / "tone_11.ogg").unlink()
    sf.write(root / "low" / "tone_01.flac", tone(60.0, 1.0), 16000, format="FLAC")  # changed content
    sf.write(root / "low" / "new.wav", tone(300.0), 16000)
    os.utime(root / "low" / "tone_02.ogg", ns=(1, 1))  # touched, same bytes -> hash check, no re-embed
    rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert (rep.added, rep.updated, rep.removed) == (1, 1, 1)
    after = {r[1]: r for r in _rows(idx)}
    assert "high/tone_11.ogg" not in after and "low/new.wav" in after
    assert after["low/tone_01.flac"][0] == before["low/tone_01.flac"][0]  # id kept
    assert after["low/tone_01.flac"][3] != before["low/tone_01.flac"][3]  # vector changed
    assert after["low/tone_02.ogg"][3] == before["low/tone_02.ogg"][3]
    s = Searcher(idx, HashEmbedder())
    assert len(s) == len(after) == len(freqs)
    assert s.search_audio(root / "low" / "tone_01.flac", k=1)[0]["path"] == "low/tone_01.flac"
    assert all(h["path"] != "high/tone_11.ogg" for h in s.search_text("tone", k=100))


def test_fingerprint_mismatch_and_rebuild(folder, tmp_path):
    root, _ = folder
    idx = tmp_path / "idx"
    build_index(root, HashEmbedder(), idx, progress=False)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        build_index(root, HashEmbedder(seed=1), idx, progress=False)
    with pytest.raises(IndexMismatchError, match="dim 64"):
        Searcher(idx, HashEmbedder(dim=32))
    rep = build_index(root, HashEmbedder(seed=1), idx, progress=False, rebuild=True)
    assert rep.added == rep.total > 0
    Searcher(idx, HashEmbedder(seed=1))


def test_manifest_source_captions_rerank_and_batch(folder, tmp_path):
    root, freqs = folder
    man = write_manifest(root, freqs)
    idx = tmp_path / "idx"
    rep = build_index(man, HashEmbedder(), idx, progress=False)
    assert rep.total == len(freqs) and not rep.skipped
    s = Searcher(idx, HashEmbedder())
    hits = s.search_text("low", k=3)
    assert all(set(h) >= {"id", "score", "path", "duration", "captions", "tags"} for h in hits)
    assert hits[0]["tags"] == ["tone"] and hits[0]["captions"][0].startswith("a ")
    assert hits[0]["path"].startswith("low/")  # the fake maps "low" to low bands
    rr = s.search_text("low", k=3, rerank=len(freqs))
    ref = HashEmbedder().rerank("low", s.store.frames_of([h["id"] for h in s.search_text("low", k=len(freqs))]))
    assert [h["why"]["rerank"] for h in rr] == pytest.approx(sorted(ref.tolist(), reverse=True)[:3], abs=1e-6)
    assert all("index_score" in h and h["score"] == h["index_score"] for h in rr)  # score: the semantic one
    bad = ref.copy()  # a scorer answering NaN / inf for some candidates: they rank last, reported as None
    top = int(np.argmax(ref))
    bad[top], bad[(top + 1) % len(bad)] = np.nan, np.inf
    s.embedder.rerank = lambda text, frames: bad
    rr = s.search_text("low", k=len(freqs), rerank=len(freqs))
    shown = [h["why"]["rerank"] for h in rr]
    assert shown[-2:] == [None, None] and all(np.isfinite(shown[:-2]))
    assert json.loads(json.dumps(rr, allow_nan=False)) == rr
    batch = s.search_batch(["low", {"audio": str(root / "low" / "tone_00.wav")}, "high"], k=4)
    assert [h["id"] for h in batch[0]] == [h["id"] for h in s.search_text("low", k=4)]
    assert batch[1][0]["path"] == "low/tone_00.wav"
    with pytest.raises(ValueError, match="k must be an integer in 1..1000"):
        s.search_text("x", k=0)
    with pytest.raises(ValueError, match="empty"):
        s.search_batch(["  "])


def test_caption_index_with_sk_bias(tmp_path):
    emb = HashEmbedder()
    caps = ["low rumble", "high whistle", "mid hum", "dog bark", "rain"]
    idx = tmp_path / "cap"
    build_caption_index(caps, emb, idx)
    s = Searcher(idx, emb)
    wave = tone(150.0, 1.0)
    base = s.search_audio(wave, k=5)
    q = emb.embed_audio([wave])[0][0]
    want = emb.embed_text(caps) @ q
    assert [h["text"] for h in base] == [caps[i] for i in np.argsort(-want)]
    bias = np.array([0, 0, 0, 0, 10.0], np.float32)  # SK-style per-caption bias folded in
    rep = build_caption_index(caps, emb, idx, bias=bias)
    assert rep.added == 0 and rep.unchanged == len(caps)
    s = Searcher(idx, emb)
    top = s.search_audio(wave, k=5)
    assert top[0]["text"] == "rain" and top[0]["score"] == pytest.approx(want[4] + 10.0, abs=1e-5)


_CRASH_SCRIPT = """
import sys
from soundseek.index import HashEmbedder, build_index
build_index(sys.argv[1], HashEmbedder(delay=float(sys.argv[3])), sys.argv[2], batch_size=2, progress=False)
"""


def _count(idx: Path) -> int:
    try:
        con = sqlite3.connect(idx / "index.sqlite", timeout=1)
        n = con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        con.close()
        return n
    except sqlite3.Error:
        return 0


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    root = tmp_path / "sounds"
    freqs = make_audio_folder(root, n=24, bad=True)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    ref, idx = tmp_path / "ref", tmp_path / "idx"
    build_index(root, HashEmbedder(), ref, batch_size=2, progress=False)
    for target in (4, 12):  # kill twice, at different points
        p = subprocess.Popen([sys.executable, "-c", _CRASH_SCRIPT, str(root), str(idx), "0.15"], env=env)
        t0 = time.time()
        while _count(idx) < target and time.time() - t0 < 60 and p.poll() is None:
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
        p.wait()
        target_count = _count(idx)
        assert target <= target_count < len(freqs)
    rep = build_index(root, HashEmbedder(), idx, batch_size=2, progress=False)  # resume in-process
    assert rep.added == len(freqs) - target_count and rep.total == len(freqs)
    got, want = _rows(idx), _rows(ref)
    assert [r[:3] for r in got] == [r[:3] for r in want]  # same ids, keys, hashes; no duplicates
    assert all(a[3] == b[3] and a[4] == b[4] for a, b in zip(got, want))  # same vectors, frame shapes
    s, r = Searcher(idx, HashEmbedder()), Searcher(ref, HashEmbedder())
    assert len(s) == len(r) == len(freqs)
    a = s.store.frames_of([x[0] for x in got])
    b = r.store.frames_of([x[0] for x in want])
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert s.search_text("low tone", k=5) == r.search_text("low tone", k=5)


def test_milvus_backend_index(folder, tmp_path):
    pytest.importorskip("milvus_lite", reason="milvus-lite not installed")
    root, freqs = folder
    idx = tmp_path / "idx"
    build_index(root, HashEmbedder(), idx, backend="milvus", progress=False)
    f_idx = tmp_path / "fidx"
    build_index(root, HashEmbedder(), f_idx, progress=False)
    m = Searcher(idx, HashEmbedder())
    f = Searcher(f_idx, HashEmbedder())
    for q in ("low", "high tone", "a b c"):
        hm, hf = m.search_text(q, k=5), f.search_text(q, k=5)
        assert [h["path"] for h in hm] == [h["path"] for h in hf]
        assert np.allclose([h["score"] for h in hm], [h["score"] for h in hf], atol=1e-5)
    m.backend.close()
    (root / "low" / "tone_00.wav").unlink()
    rep = build_index(root, HashEmbedder(), idx, backend="milvus", progress=False)  # incremental sync
    assert rep.removed == 1
    m = Searcher(idx, HashEmbedder())
    assert len(m) == len(freqs) - 1
    m.backend.close()


def test_cli_index_and_search(folder, tmp_path, capsys):
    root, freqs = folder
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_index_parser(sub)
    add_search_parser(sub)
    factory_calls = []

    def factory(model):
        factory_calls.append(model)
        return HashEmbedder()

    idx = tmp_path / "idx"
    args = parser.parse_args(["index", str(root), "--index", str(idx), "--no-progress", "--model", "m.ckpt"])
    assert run_index(args, factory) == 0
    capsys.readouterr()
    qfile = tmp_path / "q.txt"
    qfile.write_text("low\n" + json.dumps({"audio": str(root / "low" / "tone_00.wav")}) + "\n")
    args = parser.parse_args(["search", str(idx), "high", "-k", "3", "--json", "--queries", str(qfile)])
    assert run_search(args, factory) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["query"] for x in lines][:2] == ["high", "low"] and len(lines) == 3
    assert lines[2]["hits"][0]["path"] == "low/tone_00.wav" and len(lines[0]["hits"]) == 3
    assert factory_calls == ["m.ckpt", "m.ckpt"]  # search reuses the model recorded in the index
    args = parser.parse_args(["search", str(tmp_path / "nope"), "x"])
    assert run_search(args, factory) == 2
    assert "no index at" in capsys.readouterr().err
    args = parser.parse_args(["index", str(root), "--index", str(idx), "--uri", "x.db"])
    assert run_index(args, factory) == 2


def test_searcher_picks_up_updates_and_single_writer(folder, tmp_path):
    root, freqs = folder
    idx = tmp_path / "idx"
    build_index(root, HashEmbedder(), idx, progress=False, keep_frames=False)
    s = Searcher(idx, HashEmbedder())
    n0 = len(s)
    import soundfile as sf

    sf.write(root / "late.wav", tone(5000.0), 16000)
    build_index(root, HashEmbedder(), idx, progress=False, keep_frames=False)
    s._checked = -1e9  # skip the 1 s throttle
    hits = s.search_audio(root / "late.wav", k=1)
    assert len(s) == n0 + 1 and hits[0]["path"] == "late.wav"
    assert s.search_text("low", k=3, rerank=10) == s.search_text("low", k=3, mode="semantic")  # no frames: index order
    from soundseek.index.manifest import IndexLock

    with IndexLock(idx):
        with pytest.raises(RuntimeError, match="Another process is writing"):
            build_index(root, HashEmbedder(), idx, progress=False)


def test_switching_index_type_rebuilds_backend(folder, tmp_path):
    root, _ = folder
    idx = tmp_path / "idx"
    build_index(root, HashEmbedder(), idx, progress=False)
    a = Searcher(idx, HashEmbedder()).search_text("low", k=5)
    build_index(root, HashEmbedder(), idx, progress=False, backend_options={"index_type": "hnsw"})
    s = Searcher(idx, HashEmbedder())
    assert s.backend.index_type == "hnsw"
    assert [h["id"] for h in s.search_text("low", k=5)] == [h["id"] for h in a]  # tiny index: HNSW exact
    with pytest.raises(KeyError, match="Valid: faiss, milvus"):
        build_index(root, HashEmbedder(), idx, progress=False, backend="annoy")
