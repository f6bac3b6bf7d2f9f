"""Damage detection for the files of an index directory, and ``soundseek index --check``.

* ``manifest.json`` that is empty, truncated or not an index manifest -> :class:`IndexDamagedError`
  naming the file and the repair command (the manifest cannot be re-derived).
* ``index.sqlite`` (the source of truth) shorter than its header says while no write-ahead log
  (``index.sqlite-wal``) holds the missing pages, or reported malformed by SQLite ->
  :class:`IndexDamagedError`. A checkpoint interrupted by a full disk leaves the header ahead of
  the file with the pages still in the WAL: SQLite reads them from there, so that is not damage.
* a full disk is :class:`DiskFullError` (one line naming the file system and the space
  needed), never "damaged": nothing committed is lost, and the run can simply be repeated.
* ``vectors.faiss`` (+ ``.meta.json``), a cache of SQLite: a CRC-32 of each file is stamped in
  ``backend_state.json`` when saved and checked on open (one sequential read, ~GB/s); on a
  mismatch the backend is rebuilt from SQLite, so a damaged file never yields a score.
* ``backend_state.json`` that is unreadable is treated as absent (full rebuild from SQLite).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sqlite3
import zlib
from pathlib import Path
from typing import Any

__all__ = ["IndexDamagedError", "DiskFullError", "is_disk_full", "disk_full_error", "read_json", "file_crc32",
           "check_sqlite_file", "repair_hint"]


class IndexDamagedError(ValueError):
    """A file of an index is damaged; the message is one line naming it and the repair."""

    def __init__(self, path: str | Path, why: str, repair: str) -> None:
        self.path, self.why, self.repair = Path(path), why, repair
        super().__init__(f"{path} is damaged ({why}); repair: {repair}")


class DiskFullError(ValueError):
    """The file system holding an index is full; the message names it and the space needed.
    Everything committed before stays usable; rerun the command once space is freed."""

    def __init__(self, path: str | Path, needed: int, free: int | None = None, mount: str | None = None) -> None:
        self.path, self.needed, self.free = Path(path), int(needed), free
        self.mount = mount or _mount_of(Path(path))
        have = f", {_mb(free)} free" if free is not None else ""
        super().__init__(f"no space left on the disk holding {self.mount} ({self.path}{have}); free at least "
                         f"{_mb(self.needed)} and run the command again (nothing committed before was lost)")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{max(n, 0) // 1000} KB"


def _mount_of(path: Path) -> str:
    p = Path(os.path.abspath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return str(p)


def is_disk_full(err: BaseException) -> bool:
    """True for ENOSPC/EDQUOT from the OS and SQLite's "database or disk is full"."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(err, sqlite3.DatabaseError) and "disk is full" in str(err):
        return True
    text = str(err).lower()  # FAISS' writers raise RuntimeError naming the failed fwrite
    return isinstance(err, RuntimeError) and ("no space left" in text or "errno 28" in text)


def disk_full_error(index_dir: str | Path, extra: int = 0) -> DiskFullError:
    """The :class:`DiskFullError` of ``index_dir``: the space needed is what a write of the index
    may take at most (the SQLite database and its WAL can be copied once by a checkpoint, plus
    the vector file and ``extra`` bytes in flight), less what is free now."""
    d = Path(index_dir)
    size = sum((d / n).stat().st_size for n in ("index.sqlite", "index.sqlite-wal", "vectors.faiss")
               if (d / n).is_file())
    try:
        free = shutil.disk_usage(_mount_of(d)).free
    except OSError:
        free = None
    want = max(size + int(extra) + (8 << 20), 16 << 20)
    return DiskFullError(d, max(want - (free or 0), 1 << 20), free)


def repair_hint(index_dir: str | Path, source: str | None = None) -> str:
    src = f"'{source}'" if source else "SOURCE"
    return f"soundseek index {src} --index '{index_dir}' --rebuild"


def read_json(path: Path, what: str, repair: str) -> Any:
    """Parse a JSON file, raising IndexDamagedError (not a traceback) when it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise IndexDamagedError(path, f"{what} is not UTF-8 text", repair) from None
    if not text.strip():
        raise IndexDamagedError(path, f"{what} is empty", repair)
    try:
        return json.loads(text)
    except ValueError as e:
        raise IndexDamagedError(path, f"{what} is not valid JSON: {e}", repair) from None


def file_crc32(path: Path, block: int = 4 << 20) -> str:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(block):
            crc = zlib.crc32(chunk, crc)
    return f"{crc:08x}"


def check_sqlite_file(db: Path, repair: str) -> None:
    """Cheap truncation check: the file must hold the pages its header declares, unless a
    non-empty write-ahead log beside it holds pages a checkpoint has not yet copied (SQLite
    reads them from the WAL; the header may then be ahead of the file)."""
    try:
        wal = Path(str(db) + "-wal").stat().st_size
    except OSError:
        wal = 0
    try:
        size = db.stat().st_size
        with open(db, "rb") as f:
            head = f.read(100)
    except FileNotFoundError:
        return
    if size == 0:
        return  # a new database
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        raise IndexDamagedError(db, "not an SQLite database (truncated or overwritten)", repair)
    page = int.from_bytes(head[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(head[28:32], "big")
    valid = head[92:96] == head[24:28]  # the in-header size is valid for this change counter
    if valid and pages and size < page * pages and wal <= 32:  # 32: a WAL header without frames
        raise IndexDamagedError(db, f"truncated: {size} bytes, header says {page * pages}", repair)

