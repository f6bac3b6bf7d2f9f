"""``index --check`` verifies every stored artefact and repairs what it can; bad stored data
never reaches a search (no NaN score, no reshape error, no failed vector rebuild)."""
from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from index_helpers import make_audio_folder, tone
from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index.check import check_index
from soundseek.index.store import Store


def EMB():
    return HashEmbedder(dim=64)


@pytest.fixture()
def built(tmp_path):
    root = tmp_path / "sounds"
    make_audio_folder(root, n=6, bad=False)
    sf.write(root / "long.wav", np.concatenate([tone(300.0, 3.0), tone(2000.0, 3.0)]), 16000)
    idx = tmp_path / "idx"
    build_index(root, EMB(), idx, progress=False, window=2.0, hop=1.0)
    return root, idx


def _problems(report):
    return [(n, s) for n, s in report if not s.startswith("ok")]


def _ids(idx):
    s = Store(idx)
    try:
        return {k: int(r["id"]) for k, r in s.known().items()}
    finally:
        s.close()


def test_a_fresh_index_with_windows_is_ok(built):
    _, idx = built
    rep = check_index(idx)
    assert not _problems(rep), rep  # was: "stale (has 12 items, index.sqlite 7)"
    assert dict(rep)["index.sqlite"].startswith("ok (7 files, 5 windows)")


def test_malformed_vector_row_is_left_out_then_repaired(built):
    root, idx = built
    ids = _ids(idx)
    victim = ids["low/tone_01.flac"]
    con = sqlite3.connect(idx / "index.sqlite")
    con.execute("UPDATE items SET embedding=?, gen=gen+100 WHERE id=?", (b"\0" * 12, victim))
    con.execute("UPDATE state SET v=v+100 WHERE k='generation'")
    con.commit()
    con.close()
    hits = Searcher(idx, EMB()).search_text("tone", k=10, mode="semantic")  # was: arrays must have the same shape
    assert all(math.isfinite(h["score"]) for h in hits)
    (idx / "backend_state.json").unlink()  # a full rebuild of the vector file leaves the bad row out
    hits = Searcher(idx, EMB()).search_text("tone", k=10, mode="semantic")
    assert victim not in [h["id"] for h in hits] and all(math.isfinite(h["score"]) for h in hits)
    rep = check_index(idx)
    assert any("repaired" in s and f"id {victim}" in s for _, s in rep), rep
    build_index(root, EMB(), idx, progress=False)  # the repair: re-embedded under the same id
    assert _ids(idx) == ids and not _problems(check_index(idx))
    assert victim in [h["id"] for h in Searcher(idx, EMB()).search_text("tone", k=10, mode="semantic")]


@pytest.mark.parametrize("damage", ["nan", "cut"])
def test_damaged_frames_never_give_nan_or_errors_and_are_repaired(built, damage):
    root, idx = built
    chunk = idx / "frames" / "00000.bin"
    if damage == "nan":
        a = np.frombuffer(chunk.read_bytes(), np.uint8).copy()
        a[: len(a) // 2] = 0xFF  # float16 NaNs over the first half
        chunk.write_bytes(a.tobytes())
    else:
        chunk.write_bytes(b"")
    s = Searcher(idx, EMB())
    hits = s.search_text("low tone", k=5, rerank=7)  # was NaN scores / "cannot reshape array of size 0"
    assert hits and all(math.isfinite(h["score"]) for h in hits)
    rep = check_index(idx)
    assert any(n == "vectors, frames, peaks" and s.startswith("repaired") for n, s in rep), rep
    build_index(root, EMB(), idx, progress=False)
    assert not _problems(check_index(idx))
    hits = Searcher(idx, EMB()).search_text("low tone", k=5, rerank=7)
    assert all(math.isfinite(h["score"]) and "index_score" in h for h in hits)


def test_lock_that_is_a_directory(built):
    root, idx = built
    (idx / ".lock").unlink(missing_ok=True)
    (idx / ".lock").mkdir()
    with pytest.raises(RuntimeError, match="is a directory") as e:  # was IsADirectoryError, a traceback
        build_index(root, EMB(), idx, progress=False)
    assert "\n" not in str(e.value)
    assert any(n == ".lock" and s.startswith("DAMAGED") for n, s in check_index(idx))


def test_a_damaged_database_is_salvaged_keeping_every_readable_row(tmp_path):
    root, idx = tmp_path / "sounds", tmp_path / "idx"
    make_audio_folder(root, n=30, bad=False)
    build_index(root, HashEmbedder(dim=512), idx, progress=False, window=0)
    before = _ids(idx)
    con = sqlite3.connect(idx / "index.sqlite")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    with open(idx / "index.sqlite", "r+b") as f:  # one page of item rows overwritten mid-file
        f.seek(page * (pages // 2))
        f.write(b"\xa5" * page)
    assert dict(check_index(idx, repair=False))["index.sqlite"].startswith("DAMAGED")
    rep = check_index(idx)
    line = next(s for n, s in rep if n == "index.sqlite")
    assert line.startswith("repaired"), rep
    after = _ids(idx)
    assert after and all(before[k] == i for k, i in after.items())  # the rows kept keep their ids
    assert 0 < len(after) < len(before)  # (one page held part of the item table's tree)
    assert (idx / "index.sqlite.damaged").is_file()
    build_index(root, HashEmbedder(dim=512), idx, progress=False, window=0)  # re-adds what was lost
    final = _ids(idx)
    assert len(final) == 30 and all(final[k] == i for k, i in after.items())
    assert not _problems(check_index(idx))
    hits = Searcher(idx, HashEmbedder(dim=512)).search_text("tone", k=30, mode="text")
    assert len(hits) == 30  # the words re-derived by the index run
