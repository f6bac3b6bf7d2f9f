"""The reads and writes of ``soundseek index --check`` (:mod:`soundseek.index.check`): SQLite's
own integrity check, the stored vectors and frame references row by row, and the salvage of the
readable rows of a damaged ``index.sqlite`` into a new one."""
from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

# the item id column and the rows of each table that holds vectors and frame references
_ITEM_OF = {"items": "id", "windows": "item_id"}


def connect(db: Path, write: bool) -> sqlite3.Connection:
    """A connection to ``db`` that never creates it (read-only unless ``write``)."""
    return sqlite3.connect(f"file:{db}?mode={'rw' if write else 'ro'}", uri=True, isolation_level=None)


def integrity(con: sqlite3.Connection) -> list[str]:
    """SQLite's ``PRAGMA integrity_check``: ``["ok"]`` or its problems."""
    return [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]


def tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def count(con: sqlite3.Connection, table: str) -> int:
    """Rows of ``items`` or ``windows``."""
    if table not in _ITEM_OF:
        raise ValueError(f"no vectors in table {table!r}")
    return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def vectors(con: sqlite3.Connection, table: str) -> Iterable[tuple[int, bytes]]:
    """(item id, embedding bytes) of every row of ``items`` or ``windows``."""
    return con.execute(f"SELECT {_ITEM_OF[table]}, embedding FROM {table}")


def frame_refs(con: sqlite3.Connection, table: str) -> Iterable[tuple]:
    """(item id, chunk, offset, shape, dtype) of the rows of ``items`` or ``windows`` with frames."""
    return con.execute(f"SELECT {_ITEM_OF[table]}, frames_chunk, frames_offset, frames_shape, frames_dtype "
                       f"FROM {table} WHERE frames_chunk IS NOT NULL")


@contextlib.contextmanager
def transaction(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (left uncommitted when the block raises: closing the connection
    rolls it back)."""
    con.execute("BEGIN IMMEDIATE")
    yield con
    con.execute("COMMIT")


def copy_readable(db: Path, con: sqlite3.Connection, wanted: Iterable[str]) -> tuple[int, int]:
    """Copy every row SQLite can still read of the tables ``wanted`` from the database ``db``
    (opened read-only) into ``con`` (same rowids; the columns both have). ``con``'s own ``state``
    rows are dropped first, so the old database's (generation, index id) are kept. Returns
    (rows kept, read failures)."""
    kept = failures = 0
    old = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        have_tables = tables(old)
        con.execute("DELETE FROM state")  # the old database's own state (generation, index id) is kept
        for t in wanted:
            if t not in have_tables:
                continue
            cols = [r[1] for r in old.execute(f"PRAGMA table_info({t})")]
            have = {r[1] for r in con.execute(f"PRAGMA table_info({t})")}
            cols = [c for c in cols if c in have]
            k, f = _copy_rows(old, con, t, cols)
            kept, failures = kept + k, failures + f
    finally:
        old.close()
    return kept, failures


def _copy_rows(old: sqlite3.Connection, new: sqlite3.Connection, table: str, cols: list[str]) -> tuple[int, int]:
    """Rows of ``table`` in rowid order, in batches; a batch that fails is read row by row, and
    past a row that cannot be read the scan jumps ahead (1, 2, 4, ... rowids) to the next
    readable one."""
    names = ", ".join(cols)
    put = f"INSERT OR REPLACE INTO {table}(rowid, {names}) VALUES ({', '.join('?' * (len(cols) + 1))})"
    try:
        top = old.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0]
    except sqlite3.DatabaseError:
        top = None
    kept = failures = 0
    pos, step = -(1 << 62), 1
    new.execute("BEGIN")
    while True:
        try:
            rows = old.execute(f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 256",
                               (pos,)).fetchall()
            step = 1
        except sqlite3.DatabaseError:
            failures += 1
            if top is not None and pos >= top:
                break
            pos = pos + step if pos > -(1 << 62) else 0
            step = min(step * 2, 1 << 20)
            if failures > 10_000:
                break
            continue
        if not rows:
            break
        new.executemany(put, rows)
        kept += len(rows)
        pos = rows[-1][0]
    new.execute("COMMIT")
    return kept, failures
