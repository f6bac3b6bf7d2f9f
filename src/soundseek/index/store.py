"""Index storage: SQLite (WAL) metadata + embeddings (source of truth) and an append-only,
memory-mapped frame-feature store for re-ranking (METHODS.md §8).

Layout of an index directory::

    index_dir/
      manifest.json        fingerprint, dim, backend, version (written atomically)
      index.sqlite         items, tombstones, problems, state, log (WAL mode)
      frames/00000.bin ... raw frame features, appended; rows point at (chunk, offset, shape, dtype)
      vectors.faiss(.meta.json) | milvus.db   the search backend, rebuilt from SQLite when stale
      index.log            human-readable log (skipped files, runs)

Crash safety: frame bytes are written and fsync'ed *before* the SQLite transaction that
references them commits, so a committed row always points at complete data; bytes written
by a killed run that never committed are unreferenced (harmless).
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..safe_open import printable
from .integrity import IndexDamagedError, check_sqlite_file, repair_hint

SCHEMA = """
CREATE TABLE IF NOT EXISTS items(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  key TEXT UNIQUE NOT NULL,          -- relative path (clips) or caption key
  path TEXT, realpath TEXT,          -- absolute / resolved path at index time (NULL: captions)
  duration REAL, sample_rate INTEGER, channels INTEGER,
  size INTEGER, mtime_ns INTEGER, sha1 TEXT,
  captions TEXT NOT NULL DEFAULT '[]', tags TEXT NOT NULL DEFAULT '[]', meta TEXT NOT NULL DEFAULT '{}',
  source_id TEXT, bias REAL NOT NULL DEFAULT 0,
  embedding BLOB NOT NULL,
  frames_chunk INTEGER, frames_offset INTEGER, frames_shape TEXT, frames_dtype TEXT,
  gen INTEGER NOT NULL,
  dev INTEGER, ino INTEGER);        -- device/inode of the file at index time (served only if equal)
CREATE INDEX IF NOT EXISTS items_gen ON items(gen);
CREATE INDEX IF NOT EXISTS items_sha1 ON items(sha1);
CREATE TABLE IF NOT EXISTS tombstones(id INTEGER PRIMARY KEY, gen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS problems(key TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, reason TEXT, at REAL,
  mode INTEGER);
CREATE TABLE IF NOT EXISTS state(k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE IF NOT EXISTS log(at REAL, level TEXT, message TEXT);
"""

def _source_of(index_dir: Path) -> str | None:
    try:
        return json.loads((index_dir / "manifest.json").read_text(encoding="utf-8")).get("source")
    except (OSError, ValueError, AttributeError):
        return None


META_COLUMNS = ("id", "key", "path", "realpath", "duration", "sample_rate", "channels", "size",
                "mtime_ns", "sha1", "captions", "tags", "meta", "source_id", "bias", "dev", "ino")


class FrameStore:
    """Append-only chunk files of raw arrays, read back through cached ``np.memmap``s."""

    def __init__(self, root: str | Path, chunk_bytes: int = 512 << 20) -> None:
        self.root = Path(root)
        self.chunk_bytes = chunk_bytes
        self._maps: dict[int, np.memmap] = {}
        self._lock = threading.Lock()

    def _chunk_path(self, c: int) -> Path:
        return self.root / f"{c:05d}.bin"

    def append(self, arrays: list[np.ndarray]) -> list[tuple[int, int, str, str]]:
        """Write arrays, fsync, return (chunk, offset, "T,F", dtype) per array."""
        self.root.mkdir(parents=True, exist_ok=True)
        existing = sorted(int(p.stem) for p in self.root.glob("*.bin"))
        c = existing[-1] if existing else 0
        refs = []
        f = open(self._chunk_path(c), "ab")
        try:
            for a in arrays:
                a = np.ascontiguousarray(a)
                if f.tell() > 0 and f.tell() + a.nbytes > self.chunk_bytes:
                    f.flush(); os.fsync(f.fileno()); f.close()
                    c += 1
                    f = open(self._chunk_path(c), "ab")
                refs.append((c, f.tell(), ",".join(map(str, a.shape)), a.dtype.str))
                f.write(a.tobytes())
            f.flush()
            os.fsync(f.fileno())
        finally:
            f.close()
        return refs

    def read(self, chunk: int, offset: int, shape: str, dtype: str) -> np.ndarray:
        shp = tuple(int(s) for s in shape.split(",") if s != "")
        nbytes = int(np.prod(shp)) * np.dtype(dtype).itemsize
        with self._lock:
            m = self._maps.get(chunk)
            if m is None or m.size < offset + nbytes:
                m = np.memmap(self._chunk_path(chunk), dtype=np.uint8, mode="r")
                self._maps[chunk] = m
        return np.frombuffer(m[offset:offset + nbytes], dtype=dtype).reshape(shp)


class Store:
    """SQLite store; one connection per thread (safe for the threaded web service).

    Args:
        index_dir: the index directory (created when ``create``).
    """

    def __init__(self, index_dir: str | Path, create: bool = False) -> None:
        self.dir = Path(index_dir)
        self.db_path = self.dir / "index.sqlite"
        if not create and not self.db_path.is_file():
            raise FileNotFoundError(f"No index at {self.dir} (missing index.sqlite); build one with "
                                    "`soundseek index SOURCE --index DIR`")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.frames = FrameStore(self.dir / "frames")
        self._local = threading.local()
        check_sqlite_file(self.db_path, self.repair)
        try:
            if create:
                self.con.executescript(SCHEMA)
                for table, column in (("problems", "mode"), ("items", "dev"), ("items", "ino")):
                    cols = {r[1] for r in self.con.execute(f"PRAGMA table_info({table})")}
                    if column not in cols:  # indexes written before these were recorded
                        self.con.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
            else:
                self.con.execute("SELECT COUNT(*) FROM items").fetchone()
        except sqlite3.DatabaseError as e:
            self.close()
            raise self.damaged(e) from None

    @property
    def repair(self) -> str:
        return repair_hint(self.dir, _source_of(self.dir))

    def damaged(self, err: BaseException) -> IndexDamagedError:
        """The one-line error for an SQLite failure of this index."""
        return IndexDamagedError(self.db_path, str(err) or type(err).__name__, self.repair)

    @property
    def con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.row_factory = sqlite3.Row
            self._local.con = con
        return con

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    # --- state -----------------------------------------------------------------------------
    def get_state(self, k: str, default: str | None = None) -> str | None:
        row = self.con.execute("SELECT v FROM state WHERE k=?", (k,)).fetchone()
        return default if row is None else row[0]

    @staticmethod
    def set_state(con: sqlite3.Connection, k: str, v: Any) -> None:
        con.execute("INSERT INTO state(k, v) VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v=excluded.v", (k, str(v)))

    @property
    def generation(self) -> int:
        return int(self.get_state("generation", "0") or 0)

    def bump(self, con: sqlite3.Connection) -> int:
        """Next generation (call inside the transaction that changes vectors)."""
        row = con.execute("SELECT v FROM state WHERE k='generation'").fetchone()
        g = int(row[0]) + 1 if row else 1
        self.set_state(con, "generation", g)
        return g

    def log(self, level: str, message: str, con: sqlite3.Connection | None = None) -> None:
        """Append to the log table and ``index.log``; control characters (a newline in a file
        name) are escaped so a message is always exactly one line."""
        message = printable(message)
        (con or self.con).execute("INSERT INTO log VALUES(?, ?, ?)", (time.time(), level, message))
        with open(self.dir / "index.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {level}: {message}\n")

    # --- items -----------------------------------------------------------------------------
    def known(self) -> dict[str, sqlite3.Row]:
        """key -> row(id, key, size, mtime_ns, sha1, captions, tags, meta, source_id)."""
        rows = self.con.execute("SELECT id, key, size, mtime_ns, sha1, captions, tags, meta, source_id, "
                                "path, realpath FROM items").fetchall()
        return {r["key"]: r for r in rows}

    def problems(self) -> dict[str, sqlite3.Row]:
        return {r["key"]: r for r in self.con.execute("SELECT * FROM problems").fetchall()}

    def count(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM items").fetchone()[0])

    def ids(self) -> np.ndarray:
        return np.asarray([r[0] for r in self.con.execute("SELECT id FROM items ORDER BY id")], np.int64)

    def vector_count(self) -> int:
        """Vectors the backend holds: items plus the windows of long recordings."""
        from .moments import count

        return self.count() + count(self.con)

    def iter_vectors(self, since_gen: int = -1, chunk: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (ids (n,), embeddings (n, d) float32, bias (n,)) of items changed after ``since_gen``,
        then those of windows (ids offset by ``moments.WINDOW_ID_BASE``)."""
        from .moments import iter_vectors

        yield from self._iter_items(since_gen, chunk)
        yield from iter_vectors(self.con, since_gen, chunk)

    def _iter_items(self, since_gen: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        last = -1
        while True:
            rows = self.con.execute("SELECT id, embedding, bias FROM items WHERE gen > ? AND id > ? "
                                    "ORDER BY id LIMIT ?", (since_gen, last, chunk)).fetchall()
            if not rows:
                return
            ids = np.asarray([r[0] for r in rows], np.int64)
            emb = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, emb, np.asarray([r[2] for r in rows], np.float32)
            last = int(ids[-1])

    def deleted_since(self, gen: int) -> np.ndarray:
        return np.asarray([r[0] for r in self.con.execute("SELECT id FROM tombstones WHERE gen > ?", (gen,))], np.int64)

    def items(self, ids: list[int]) -> dict[int, dict]:
        """id -> metadata dict (json columns decoded) for the ids that exist."""
        out: dict[int, dict] = {}
        cols = ", ".join(META_COLUMNS)
        for s in range(0, len(ids), 500):
            part = [int(i) for i in ids[s:s + 500]]
            q = f"SELECT {cols} FROM items WHERE id IN ({','.join('?' * len(part))})"
            for r in self.con.execute(q, part).fetchall():
                d = dict(r)
                for k in ("captions", "tags", "meta"):
                    d[k] = json.loads(d[k])
                out[d["id"]] = d
        return out

    def frames_of(self, ids: list[int]) -> list[np.ndarray | None]:
        out: list[np.ndarray | None] = []
        for i in ids:
            r = self.con.execute("SELECT frames_chunk, frames_offset, frames_shape, frames_dtype FROM items "
                                 "WHERE id=?", (int(i),)).fetchone()
            out.append(None if r is None or r[0] is None else self.frames.read(r[0], r[1], r[2], r[3]))
        return out

    def set_bias(self, bias: dict[int, float]) -> int:
        """Set per-item additive biases (the SK / OT column correction); returns rows changed."""
        with self.transaction() as con:
            g = self.bump(con)
            n = 0
            for i, b in bias.items():
                n += con.execute("UPDATE items SET bias=?, gen=? WHERE id=?", (float(b), g, int(i))).rowcount
        return n

    # --- files by content or location (collections, :mod:`.collections`) -------------------
    def by_sha1(self, shas: list[str]) -> dict[str, dict]:
        """sha1 -> ``{"id", "key", "path"}`` of the indexed file with that content (the lowest
        id when several files have it); hashes of no indexed file are absent."""
        out: dict[str, dict] = {}
        for s in range(0, len(shas), 500):
            part = list(shas[s:s + 500])
            for r in self.con.execute(f"SELECT id, key, path, sha1 FROM items WHERE sha1 IN "
                                      f"({','.join('?' * len(part))}) AND path IS NOT NULL ORDER BY id DESC", part):
                out[r["sha1"]] = {"id": int(r["id"]), "key": r["key"], "path": r["path"]}
        return out

    def find_file(self, realpath: str | None = None, key: str | None = None, sha1: str | None = None) -> int | None:
        """The id of the indexed file with this resolved path, else this key (path in the
        library), else this content hash; None when none matches."""
        for column, value in (("realpath", realpath), ("key", key), ("sha1", sha1)):
            if value is not None:
                row = self.con.execute(f"SELECT id FROM items WHERE {column}=? ORDER BY id LIMIT 1",
                                       (value,)).fetchone()
                if row is not None:
                    return int(row[0])
        return None
