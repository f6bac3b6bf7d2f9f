"""The ``windows`` table: vectors of the windows of long recordings (:mod:`soundseek.index.moments`),
given to the vector backend under ids ``WINDOW_ID_BASE + window id``."""
from __future__ import annotations

import sqlite3
from typing import Any, Iterator

import numpy as np

WINDOW_ID_BASE = 1 << 40
SCHEMA = ("CREATE TABLE IF NOT EXISTS windows(id INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER NOT NULL, "
          "start REAL NOT NULL, end REAL NOT NULL, embedding BLOB NOT NULL, gen INTEGER NOT NULL, "
          "frames_chunk INTEGER, frames_offset INTEGER, frames_shape TEXT, frames_dtype TEXT)",
          "CREATE INDEX IF NOT EXISTS windows_item ON windows(item_id)",
          "CREATE INDEX IF NOT EXISTS windows_gen ON windows(gen)")


def ensure_schema(con: sqlite3.Connection) -> None:
    for stmt in SCHEMA:
        con.execute(stmt)
    have = {r[1] for r in con.execute("PRAGMA table_info(windows)")}
    for col, typ in (("frames_chunk", "INTEGER"), ("frames_offset", "INTEGER"), ("frames_shape", "TEXT"),
                     ("frames_dtype", "TEXT")):
        if col not in have:  # a windows table written before frames were kept
            con.execute(f"ALTER TABLE windows ADD COLUMN {col} {typ}")


def exists(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE name='windows'").fetchone() is not None


def put(con: sqlite3.Connection, item_id: int, spans: list[tuple[float, float]], emb: np.ndarray, gen: int,
        frame_refs: list | None = None) -> None:
    refs = frame_refs or [(None, None, None, None)] * len(spans)
    con.executemany("INSERT INTO windows(item_id, start, end, embedding, gen, frames_chunk, frames_offset, "
                    "frames_shape, frames_dtype) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(int(item_id), float(a), float(b), np.asarray(e, np.float32).tobytes(), int(gen), *ref)
                     for (a, b), e, ref in zip(spans, emb, refs)])


def drop(con: sqlite3.Connection, item_id: int, gen: int) -> None:
    """Remove the windows of ``item_id`` (tombstoned so the backend forgets them)."""
    if not exists(con):
        return
    con.execute("INSERT OR REPLACE INTO tombstones(id, gen) SELECT id + ?, ? FROM windows WHERE item_id=?",
                (WINDOW_ID_BASE, int(gen), int(item_id)))
    con.execute("DELETE FROM windows WHERE item_id=?", (int(item_id),))


def count(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT COUNT(*) FROM windows").fetchone()[0]) if exists(con) else 0


def iter_vectors(con: sqlite3.Connection, since_gen: int = -1, chunk: int = 65536
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(backend ids, embeddings, zero bias) of windows changed after ``since_gen``."""
    if not exists(con):
        return
    last = -1
    while True:
        rows = con.execute("SELECT id, embedding FROM windows WHERE gen > ? AND id > ? ORDER BY id LIMIT ?",
                           (since_gen, last, chunk)).fetchall()
        if not rows:
            return
        ids = np.asarray([r[0] for r in rows], np.int64)
        emb = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
        yield ids + WINDOW_ID_BASE, emb, np.zeros(len(ids), np.float32)
        last = int(ids[-1])


def lookup(con: sqlite3.Connection, vector_ids: list[int]) -> dict[int, tuple[int, float, float]]:
    """backend id -> (item id, start, end) for the window ids among ``vector_ids``."""
    wids = sorted({int(i) - WINDOW_ID_BASE for i in vector_ids if int(i) >= WINDOW_ID_BASE})
    out = {}
    for s in range(0, len(wids), 500):
        part = wids[s:s + 500]
        for r in con.execute(f"SELECT id, item_id, start, end FROM windows WHERE id IN ({','.join('?' * len(part))})",
                             part):
            out[int(r[0]) + WINDOW_ID_BASE] = (int(r[1]), float(r[2]), float(r[3]))
    return out


def of_items(con: sqlite3.Connection, item_ids: list[int]) -> list[tuple]:
    """(item id, start, end, embedding bytes) of the windows of ``item_ids`` (at most 500)."""
    marks = ",".join("?" * len(item_ids))
    return con.execute(f"SELECT item_id, start, end, embedding FROM windows WHERE item_id IN ({marks})",
                       item_ids).fetchall()


def window_frames(con: sqlite3.Connection, frames_store: Any, vector_id: int
                  ) -> tuple[np.ndarray, float, float] | None:
    """(stored frame features, start, end) of a window (by backend id), or None."""
    r = con.execute("SELECT frames_chunk, frames_offset, frames_shape, frames_dtype, start, end FROM windows "
                    "WHERE id=?", (int(vector_id) - WINDOW_ID_BASE,)).fetchone()
    if r is None or r[0] is None:
        return None
    frames = frames_store.read(r[0], r[1], r[2], r[3])  # None: missing or damaged
    return None if frames is None else (frames, float(r[4]), float(r[5]))
