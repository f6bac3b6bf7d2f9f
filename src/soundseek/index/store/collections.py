"""``collections.sqlite``: the named collections of an index (:mod:`soundseek.index.collections`),
in their own file so a rebuild of ``index.sqlite`` keeps them. Members are held by content hash."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable

DB_NAME = "collections.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS collections(name TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members(collection TEXT NOT NULL REFERENCES collections(name) ON DELETE CASCADE,
  sha1 TEXT NOT NULL, key TEXT NOT NULL, added REAL NOT NULL, PRIMARY KEY(collection, sha1));
"""


def connect(path: Path, where: Path, write: bool) -> sqlite3.Connection | None:
    """A connection to the collections file ``path`` (of the index in ``where``), its tables made
    when ``write``; None when reading and there is no file yet. PermissionError (one line) when
    it cannot be opened, or written in a read-only index directory."""
    if not write and not path.is_file():
        return None
    try:
        con = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.OperationalError as e:
        raise PermissionError(f"cannot open {path.name} in {where}: {e}") from None
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA foreign_keys=ON")
    if write:
        try:
            con.executescript(SCHEMA)
        except sqlite3.OperationalError as e:  # a read-only index directory
            con.close()
            raise PermissionError(f"cannot write collections in {where}: {e}") from None
    return con


def write(path: Path, where: Path, fn: Callable[[sqlite3.Connection], Any]) -> Any:
    """``fn(con)`` in one transaction on the collections file (rolled back if it raises)."""
    con = connect(path, where, True)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            out = fn(con)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
        return out
    finally:
        con.close()


def names(con: sqlite3.Connection) -> list[tuple[str, float, int]]:
    """(name, created, files) of every collection."""
    return con.execute("SELECT c.name, c.created, COUNT(m.sha1) FROM collections c LEFT JOIN members m "
                       "ON m.collection = c.name GROUP BY c.name").fetchall()


def exists(con: sqlite3.Connection, name: str) -> bool:
    return con.execute("SELECT 1 FROM collections WHERE name=?", (name,)).fetchone() is not None


def members(con: sqlite3.Connection, name: str, limit: int) -> list[sqlite3.Row]:
    """Rows (sha1, key, added) of collection ``name`` in the order added, at most ``limit``."""
    return con.execute("SELECT sha1, key, added FROM members WHERE collection=? ORDER BY added, rowid "
                       "LIMIT ?", (name, limit)).fetchall()


def holding(con: sqlite3.Connection, shas: list[str]) -> list[tuple[str, str]]:
    """(sha1, collection) for the hashes among ``shas`` (at most 500), by collection name."""
    return con.execute(f"SELECT sha1, collection FROM members WHERE sha1 IN "
                       f"({','.join('?' * len(shas))}) ORDER BY collection", shas).fetchall()


def create(con: sqlite3.Connection, name: str, now: float) -> None:
    """Collection ``name`` (nothing happens when it exists)."""
    con.execute("INSERT OR IGNORE INTO collections(name, created) VALUES(?, ?)", (name, now))


def size(con: sqlite3.Connection, name: str) -> int:
    return con.execute("SELECT COUNT(*) FROM members WHERE collection=?", (name,)).fetchone()[0]


def add(con: sqlite3.Connection, name: str, sha1: str, key: str, now: float) -> int:
    """Put a file in ``name``; returns 1 when it was not there yet, else 0."""
    return con.execute("INSERT OR IGNORE INTO members(collection, sha1, key, added) VALUES(?, ?, ?, ?)",
                       (name, sha1, key, now)).rowcount


def remove(con: sqlite3.Connection, name: str, sha1: str) -> int:
    """Take a file out of ``name``; returns 1 when it was there, else 0."""
    return con.execute("DELETE FROM members WHERE collection=? AND sha1=?", (name, sha1)).rowcount


def delete(con: sqlite3.Connection, name: str) -> None:
    """Collection ``name`` and its members."""
    con.execute("DELETE FROM collections WHERE name=?", (name,))
