"""A full disk never damages an index: a write either completes or leaves the previous state
usable, ENOSPC is one line naming the disk and the space needed, and a write-ahead log that a
checkpoint has not finished copying is not called truncation."""
from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from index_helpers import make_audio_folder
from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index.check import check_index
from soundseek.index.integrity import DiskFullError
from soundseek.index.store import Store


def EMB():
    return HashEmbedder(dim=128)


def _ranking(idx: Path) -> list[dict[str, float]]:
    s = Searcher(idx, EMB())
    try:
        return [{h["path"].rsplit("/", 1)[-1]: round(h["score"], 5) for h in hits}
                for hits in s.search_batch(["low tone", "high tone"], k=30, mode="semantic")]
    finally:
        s.store.close()


def _interrupted_checkpoint(src: Path, dst: Path) -> None:
    """Copy the index ``src`` to ``dst`` as a checkpoint cut short by a full disk leaves it: new
    pages committed in the WAL, page 1 (the header, now declaring the larger size) already copied
    into the database file, the file not yet extended."""
    con = sqlite3.connect(src / "index.sqlite", isolation_level=None)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("BEGIN")
    for i in range(300):
        con.execute("INSERT INTO log VALUES(?, 'info', ?)", (float(i), "x" * 2000))
    con.execute("COMMIT")
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*-shm"))
    con.close()
    wal = (dst / "index.sqlite-wal").read_bytes()
    page = int.from_bytes(wal[8:12], "big")
    frames = [wal[o:o + 24 + page] for o in range(32, len(wal) - 24 - page + 1, 24 + page)]
    first = [f[24:] for f in frames if int.from_bytes(f[:4], "big") == 1][-1]
    db = dst / "index.sqlite"
    declared = int.from_bytes(first[28:32], "big") * page
    assert db.stat().st_size < declared  # the situation: header ahead of the file
    with open(db, "r+b") as f:
        f.write(first)


def test_an_unfinished_checkpoint_is_not_truncation(tmp_path):
    root = tmp_path / "sounds"
    make_audio_folder(root, n=6, bad=False)
    build_index(root, EMB(), tmp_path / "idx", progress=False)
    n_log = Store(tmp_path / "idx").con.execute("SELECT COUNT(*) FROM log").fetchone()[0]
    _interrupted_checkpoint(tmp_path / "idx", tmp_path / "cut")
    store = Store(tmp_path / "cut")  # failed before: "truncated: N bytes, header says M"
    assert store.count() == 6
    assert store.con.execute("SELECT COUNT(*) FROM log").fetchone()[0] == n_log + 300
    store.close()
    assert not [s for _, s in check_index(tmp_path / "cut") if s.startswith("DAMAGED")]
    assert _ranking(tmp_path / "cut") == _ranking(tmp_path / "idx")


def test_sqlite_full_is_disk_full_not_damage(tmp_path):
    """SQLite's SQLITE_FULL (here from max_page_count, as from a full disk) is not 'damaged'."""
    root = tmp_path / "sounds"
    make_audio_folder(root, n=4, bad=False)
    build_index(root, EMB(), tmp_path / "idx", progress=False)
    store = Store(tmp_path / "idx")
    pages = store.con.execute("PRAGMA page_count").fetchone()[0]
    store.con.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(sqlite3.OperationalError, match="full") as e:
        with store.transaction() as con:
            con.execute("INSERT INTO log VALUES(0, 'info', ?)", ("x" * 100_000,))
    err = store.damaged(e.value)
    assert isinstance(err, DiskFullError) and "damaged" not in str(err) and "free at least" in str(err)
    store.close()


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    return True


@pytest.fixture()
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if not _can_mount() or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)],
                                          capture_output=True).returncode:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path, leave: int) -> Path:
    """Fill the file system ``mnt`` up to ``leave`` free bytes (a filler file)."""
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * (64 << 10))
                f.flush()
        except OSError:
            pass
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


@pytest.mark.parametrize("leave", [0, 16 << 10, 64 << 10, 256 << 10, 1 << 20])
def test_index_update_on_a_full_disk(tmp_path, small_disk, capsys, leave):
    root = tmp_path / "sounds"
    make_audio_folder(root, n=24, bad=False)
    ref = tmp_path / "ref"
    build_index(root, EMB(), ref, progress=False, batch_size=4)
    hidden = sorted(root.rglob("tone_1*"))  # indexed by the update on the full disk
    moved = tmp_path / "later"
    moved.mkdir()
    for p in hidden:
        p.rename(moved / p.name)
    idx = small_disk / "idx"
    build_index(root, EMB(), idx, progress=False, batch_size=4)
    ids = {r["key"]: r["id"] for r in Store(idx).known().values()}
    for p in hidden:
        (moved / p.name).rename(p)
    filler = _fill(small_disk, leave)
    try:
        rep = build_index(root, EMB(), idx, progress=False, batch_size=4)
        assert rep.total == 24  # enough space after all
    except DiskFullError as e:
        msg = str(e)
        assert "\n" not in msg and str(small_disk) in msg and "free at least" in msg and "damaged" not in msg
    # the previous state is usable: opens, checks clean, keeps every committed id
    store = Store(idx)
    assert {k: ids[k] for k in ids} == {k: r["id"] for k, r in store.known().items() if k in ids}
    store.close()
    assert not [s for _, s in check_index(idx) if s.startswith("DAMAGED")]
    filler.unlink()
    rep = build_index(root, EMB(), idx, progress=False, batch_size=4)
    assert rep.total == 24
    assert not [s for _, s in check_index(idx) if s.startswith("DAMAGED")]
    assert {k: r["id"] for k, r in Store(idx).known().items() if k in ids} == ids
    assert _ranking(idx) == _ranking(ref)
