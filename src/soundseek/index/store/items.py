"""Rows of ``items`` and ``problems`` as the indexers write them (:mod:`soundseek.index.indexer`,
:mod:`soundseek.index.captions`), inside the caller's transaction (:meth:`Store.transaction`),
and the stored vectors a search reads back. Names are given as :func:`name_value` makes them."""
from __future__ import annotations

import sqlite3
from typing import Iterable

# the columns of a file's row an index run writes (with ``key`` when it inserts)
FILE_COLUMNS = ("path, realpath, duration, sample_rate, channels, size, mtime_ns, sha1, captions, tags, meta, "
                "source_id, embedding, frames_chunk, frames_offset, frames_shape, frames_dtype, gen, dev, ino")
CAPTION_COLUMNS = "captions, sha1, source_id, bias, embedding, gen"


# --- writing ---------------------------------------------------------------------------------
def remove(con: sqlite3.Connection, item_id: int, gen: int) -> None:
    """Delete an item's row, tombstoned at ``gen`` so the vector backend forgets it."""
    con.execute("INSERT OR REPLACE INTO tombstones VALUES(?, ?)", (item_id, gen))
    con.execute("DELETE FROM items WHERE id=?", (item_id,))


def insert_file(con: sqlite3.Connection, key: str | bytes, values: tuple) -> int:
    """A new file's row (``values`` in the order of :data:`FILE_COLUMNS`); returns its id."""
    return con.execute(f"INSERT INTO items(key, {FILE_COLUMNS}) VALUES "
                       f"({','.join('?' * (len(values) + 1))})", (key, *values)).lastrowid


def update_file(con: sqlite3.Connection, item_id: int, values: tuple) -> None:
    """Rewrite a file's row (``values`` in the order of :data:`FILE_COLUMNS`), keeping its id."""
    con.execute(f"UPDATE items SET ({FILE_COLUMNS}) = ({','.join('?' * len(values))}) WHERE id=?",
                (*values, item_id))


def touch_file(con: sqlite3.Connection, item_id: int, size: int, mtime_ns: int, dev: int | None,
               ino: int | None) -> None:
    """A file whose content is unchanged: its new size, time stamp and inode."""
    con.execute("UPDATE items SET size=?, mtime_ns=?, dev=?, ino=? WHERE id=?", (size, mtime_ns, dev, ino, item_id))


def set_labels(con: sqlite3.Connection, key: str | bytes, captions: str, tags: str, meta: str) -> None:
    """New captions, tags and metadata (JSON texts) of the file ``key``."""
    con.execute("UPDATE items SET captions=?, tags=?, meta=? WHERE key=?", (captions, tags, meta, key))


def insert_caption(con: sqlite3.Connection, key: str, values: tuple) -> None:
    """A caption's row (``values`` in the order of :data:`CAPTION_COLUMNS`)."""
    con.execute(f"INSERT INTO items(key, {CAPTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", (key, *values))


def update_caption(con: sqlite3.Connection, item_id: int, values: tuple) -> None:
    """Rewrite a caption's row (``values`` in the order of :data:`CAPTION_COLUMNS`), keeping its id."""
    con.execute("UPDATE items SET captions=?, sha1=?, source_id=?, bias=?, embedding=?, gen=? "
                "WHERE id=?", (*values, item_id))


def restamp_bias(con: sqlite3.Connection, item_id: int, bias: float, gen: int) -> None:
    """Set an item's bias, stamped with ``gen`` only when it changes."""
    con.execute("UPDATE items SET bias=?, gen=? WHERE id=? AND bias<>?", (bias, gen, item_id, bias))


def record_problem(con: sqlite3.Connection, key: str | bytes, size: int | None, mtime_ns: int | None, reason: str,
                   at: float, mode: int | None) -> None:
    con.execute("INSERT OR REPLACE INTO problems(key, size, mtime_ns, reason, at, mode) "
                "VALUES(?, ?, ?, ?, ?, ?)", (key, size, mtime_ns, reason, at, mode))


def clear_problem(con: sqlite3.Connection, key: str | bytes) -> None:
    con.execute("DELETE FROM problems WHERE key=?", (key,))


def clear_problems(con: sqlite3.Connection, keys: list[str | bytes]) -> None:
    con.execute("DELETE FROM problems WHERE key IN (%s)" % ",".join("?" * len(keys)), keys)


# one file that cannot be stored is skipped, not its batch: each is written under a savepoint
def begin_item(con: sqlite3.Connection) -> None:
    con.execute("SAVEPOINT item")


def undo_item(con: sqlite3.Connection) -> None:
    con.execute("ROLLBACK TO item")
    con.execute("RELEASE item")


def end_item(con: sqlite3.Connection) -> None:
    con.execute("RELEASE item")


# --- reading ---------------------------------------------------------------------------------
def vectors_with_bias(con: sqlite3.Connection, ids: list[int]) -> list[tuple]:
    """(id, embedding bytes, bias) of the items among ``ids`` (at most 500)."""
    marks = ",".join("?" * len(ids))
    return con.execute(f"SELECT id, embedding, bias FROM items WHERE id IN ({marks})", ids).fetchall()


def embeddings(con: sqlite3.Connection, ids: Iterable[int]) -> list[bytes]:
    """The embedding bytes of the items among ``ids`` (at most 500)."""
    ids = list(ids)
    return [r[0] for r in con.execute(f"SELECT embedding FROM items WHERE id IN ({','.join('?' * len(ids))})",
                                      ids).fetchall()]


def embedding(con: sqlite3.Connection, item_id: int) -> bytes | None:
    """The embedding bytes of item ``item_id``; None when there is no such item."""
    row = con.execute("SELECT embedding FROM items WHERE id=?", (int(item_id),)).fetchone()
    return None if row is None else row[0]
