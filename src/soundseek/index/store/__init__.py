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

This package is the one home of the index's SQL (no other module runs a statement): this
module keeps ``items``, ``tombstones``, ``problems``, ``state`` and ``log``; its submodules the
tables beside them, as functions of a connection so they run inside the caller's transaction:
:mod:`.fts` (the FTS5 words), :mod:`.moments` (windows), :mod:`.peaks`, :mod:`.itemdata`
(``stale``), :mod:`.items` (the rows an index run writes), :mod:`.collections`
(``collections.sqlite``) and :mod:`.check` (``index --check`` and its salvage).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ...safe_open import printable
from ..filters import where_sql
from ..integrity import (DiskFullError, IndexDamagedError, check_sqlite_file, disk_full_error, is_disk_full,
                        repair_hint)

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


def name_value(name: str) -> str | bytes:
    """A file name or path for SQLite, losslessly: text when it is valid UTF-8, else the raw
    bytes of the file system name (a BLOB; ``os.walk`` gives them as surrogate escapes)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape")


def name_of(value: str | bytes | None) -> str | None:
    """Inverse of :func:`name_value`: the ``str`` the file system functions take."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def shown_name(name: str | None) -> str | None:
    """A name for people and JSON: bytes that are not UTF-8 shown as ``\\xff`` escapes."""
    if name is None:
        return None
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class IndexReplacedError(RuntimeError):
    """The index directory now holds another index (rebuilt since this store was opened)."""

    def __init__(self, index_dir: Path) -> None:
        super().__init__(f"the index {index_dir} was rebuilt while in use; open it again")


def read_index_id(db_path: str | Path) -> str | None:
    """The ``index_id`` recorded in the database file ``db_path``, read without writing or
    creating anything (None when it records none). OSError or ``sqlite3.DatabaseError`` when
    the file cannot be read."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = con.execute("SELECT v FROM state WHERE k='index_id'").fetchone()
    finally:
        con.close()
    return row[0] if row else None


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
        start = (c, f.tell())
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
        except BaseException:  # a full disk: give back the bytes of this call (never referenced)
            f.close()
            self._truncate_back(*start, c)
            raise
        finally:
            f.close()
        return refs

    def _truncate_back(self, chunk: int, size: int, last: int) -> None:
        with contextlib.suppress(OSError):
            os.truncate(self._chunk_path(chunk), size)
            for c in range(chunk + 1, last + 1):
                self._chunk_path(c).unlink(missing_ok=True)

    def read(self, chunk: int, offset: int, shape: str, dtype: str) -> np.ndarray | None:
        """The array at a reference, or None when it is missing, cut short, malformed or holds
        NaN/Inf (so re-ranking falls back to the index score; ``index --check`` repairs it)."""
        try:
            shp = tuple(int(s) for s in str(shape).split(",") if s != "")
            dt = np.dtype(str(dtype))
            nbytes = int(np.prod(shp)) * dt.itemsize
        except (ValueError, TypeError):
            return None
        if not shp or nbytes <= 0 or int(offset) < 0:
            return None
        try:
            with self._lock:
                m = self._maps.get(chunk)
                if m is None or m.size < offset + nbytes:
                    m = np.memmap(self._chunk_path(chunk), dtype=np.uint8, mode="r")
                    self._maps[chunk] = m
        except (OSError, ValueError):  # missing or empty chunk file
            return None
        if m.size < offset + nbytes:
            return None
        a = np.frombuffer(m[offset:offset + nbytes], dtype=dt).reshape(shp)
        if dt.kind == "f" and not np.isfinite(a).all():
            return None
        return a

    def problem(self, chunk: int, offset: int, shape: str, dtype: str) -> str | None:
        """Why the array at a reference cannot be used (None: it can)."""
        try:
            size = self._chunk_path(int(chunk)).stat().st_size
        except OSError:
            return f"missing (chunk file {int(chunk):05d}.bin)"
        try:
            nbytes = int(np.prod([int(x) for x in str(shape).split(",") if x != ""])) * np.dtype(str(dtype)).itemsize
        except (ValueError, TypeError):
            return f"have a malformed shape/dtype ({shape!r}, {dtype!r})"
        if int(offset) + nbytes > size:
            return f"cut short (chunk {int(chunk):05d}.bin has {size} bytes, needs {int(offset) + nbytes})"
        if self.read(chunk, offset, shape, dtype) is None:
            return "hold NaN/Inf values"
        return None


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
            self.con  # noqa: B018 - opens (WAL mode): a full disk fails here, reported as such
            if create:
                self.con.executescript(SCHEMA)
                for table, column in (("problems", "mode"), ("items", "dev"), ("items", "ino")):
                    cols = {r[1] for r in self.con.execute(f"PRAGMA table_info({table})")}
                    if column not in cols:  # indexes written before these were recorded
                        self.con.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
                if self.get_state("index_id") is None:
                    self.con.execute("INSERT OR IGNORE INTO state(k, v) VALUES('index_id', ?)", (uuid.uuid4().hex,))
            else:
                self.con.execute("SELECT COUNT(*) FROM items").fetchone()
            self.index_id = self.get_state("index_id")
        except sqlite3.DatabaseError as e:
            self.close()
            raise self.damaged(e) from None

    @property
    def repair(self) -> str:
        """Salvage first (keeps every readable row), re-index from scratch only if that fails."""
        return (f"soundseek index --index '{self.dir}' --check (copies every readable row into a new database), "
                f"or if that fails: {repair_hint(self.dir, _source_of(self.dir))}")

    def damaged(self, err: BaseException) -> IndexDamagedError | DiskFullError:
        """The one-line error for an SQLite failure of this index (a full disk is not damage)."""
        if is_disk_full(err):
            return disk_full_error(self.dir)
        return IndexDamagedError(self.db_path, str(err) or type(err).__name__, self.repair)

    @property
    def con(self) -> sqlite3.Connection:
        """This thread's connection. Opened on first use by the thread; if ``index.sqlite`` was
        replaced meanwhile (a rebuild), :class:`IndexReplacedError` instead of a connection to
        another index whose ids mean other files."""
        con = getattr(self._local, "con", None)
        if con is None:
            if hasattr(self, "index_id") and not self.db_path.is_file():
                raise IndexReplacedError(self.dir)
            con = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.row_factory = sqlite3.Row
            if hasattr(self, "index_id"):  # not the first connection: the same index?
                try:
                    row = con.execute("SELECT v FROM state WHERE k='index_id'").fetchone()
                except sqlite3.DatabaseError:
                    row = None
                if (row[0] if row else None) != self.index_id:
                    con.close()
                    raise IndexReplacedError(self.dir)
            self._local.con = con
        return con

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        con = self.con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            if con.in_transaction:  # SQLite already rolled back after SQLITE_FULL / IOERR
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
        try:  # the readable copy; the log table above is the record
            with open(self.dir / "index.log", "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {level}: {message}\n")
        except OSError as e:
            if not is_disk_full(e):
                raise

    # --- items -----------------------------------------------------------------------------
    def known(self) -> dict[str, sqlite3.Row]:
        """key -> row(id, key, size, mtime_ns, sha1, captions, tags, meta, source_id)."""
        rows = self.con.execute("SELECT id, key, size, mtime_ns, sha1, captions, tags, meta, source_id, "
                                "path, realpath FROM items").fetchall()
        return {name_of(r["key"]): r for r in rows}

    def problems(self) -> dict[str, sqlite3.Row]:
        return {name_of(r["key"]): r for r in self.con.execute("SELECT * FROM problems").fetchall()}

    def count(self, where: dict | None = None) -> int:
        """Files in the index; with ``where`` (checked by :func:`.filters.check_where`), those passing it."""
        if not where:
            return int(self.con.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        cond, args = where_sql(where)
        return int(self.con.execute(f"SELECT COUNT(*) FROM items WHERE {cond}", args).fetchone()[0])

    def matching(self, where: dict) -> set[int]:
        """Ids of the files passing ``where`` (checked by :func:`.filters.check_where`)."""
        cond, args = where_sql(where)
        return {int(r[0]) for r in self.con.execute(f"SELECT id FROM items WHERE {cond}", args)}

    def passes(self, item: int, where: dict) -> bool:
        """Whether file ``item`` exists and passes ``where`` (checked by :func:`.filters.check_where`)."""
        cond, args = where_sql(where)
        return self.con.execute(f"SELECT 1 FROM items WHERE id=? AND ({cond})", [int(item), *args]).fetchone() is not None

    def ids(self) -> np.ndarray:
        return np.asarray([r[0] for r in self.con.execute("SELECT id FROM items ORDER BY id")], np.int64)

    def vector_count(self) -> int:
        """Vectors the backend holds: items plus the windows of long recordings."""
        from .moments import count

        return self.count() + count(self.con)

    def iter_vectors(self, since_gen: int = -1, chunk: int = 65536, dim: int | None = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield (ids (n,), embeddings (n, d) float32, bias (n,)) of items changed after ``since_gen``,
        then those of windows (ids offset by ``moments.WINDOW_ID_BASE``). With ``dim``, item rows
        whose vector is not ``dim`` finite floats are left out (``index --check`` repairs them)."""
        from .moments import iter_vectors

        yield from self._iter_items(since_gen, chunk, dim)
        yield from iter_vectors(self.con, since_gen, chunk)

    def _iter_items(self, since_gen: int, chunk: int, dim: int | None = None
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        last = -1
        while True:
            rows = self.con.execute("SELECT id, embedding, bias FROM items WHERE gen > ? AND id > ? "
                                    "ORDER BY id LIMIT ?", (since_gen, last, chunk)).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            vecs = [np.frombuffer(r[1], dtype=np.float32) if len(r[1]) % 4 == 0 else None for r in rows]
            keep = [i for i, v in enumerate(vecs) if v is not None and (dim is None or v.size == dim)
                    and np.isfinite(v).all() and np.isfinite(rows[i][2])]
            if len(keep) < len(rows) and dim is not None:
                logging.getLogger(__name__).warning(
                    "%s: %d stored vector(s) malformed or not finite, left out of searches; "
                    "repair: soundseek index --check", self.dir, len(rows) - len(keep))
            if not keep:
                continue
            ids = np.asarray([rows[i][0] for i in keep], np.int64)
            emb = np.stack([vecs[i] for i in keep])
            yield ids, emb, np.asarray([rows[i][2] for i in keep], np.float32)

    def deleted_since(self, gen: int) -> np.ndarray:
        return np.asarray([r[0] for r in self.con.execute("SELECT id FROM tombstones WHERE gen > ?", (gen,))], np.int64)

    def items(self, ids: list[int]) -> dict[int, dict]:
        """id -> metadata dict (json columns decoded) for the ids that exist; ``path`` and
        ``realpath`` are the file system names, ``key`` is shown with escapes where a name is not
        UTF-8 (:func:`shown_name`)."""
        out: dict[int, dict] = {}
        cols = ", ".join(META_COLUMNS)
        for s in range(0, len(ids), 500):
            part = [int(i) for i in ids[s:s + 500]]
            q = f"SELECT {cols} FROM items WHERE id IN ({','.join('?' * len(part))})"
            for r in self.con.execute(q, part).fetchall():
                d = dict(r)
                for k in ("captions", "tags", "meta"):
                    d[k] = json.loads(d[k])
                d["path"], d["realpath"] = name_of(d["path"]), name_of(d["realpath"])  # lossless: opened
                d["key"] = shown_name(name_of(d["key"]))  # shown (JSON needs valid text)
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

    # --- files by content or location (:mod:`soundseek.index.collections`) ------------------
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
