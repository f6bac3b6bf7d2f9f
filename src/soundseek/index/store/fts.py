"""The ``text_fts`` table: SQLite FTS5 over each item's words (:mod:`soundseek.index.textindex`:
what the columns hold, how queries are split and hits weighted). ``rowid`` is the item id."""
from __future__ import annotations

import sqlite3

SCHEMA = ("CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(name, folder, labels, tags, "
          "tokenize='porter unicode61 remove_diacritics 2')")


def exists(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE name='text_fts'").fetchone() is not None


def create(con: sqlite3.Connection) -> None:
    con.execute(SCHEMA)


def text_version(con: sqlite3.Connection) -> str | None:
    """The vocabulary version the words were written with (``state`` ``text_version``)."""
    row = con.execute("SELECT v FROM state WHERE k='text_version'").fetchone()
    return None if row is None else row[0]


def set_text_version(con: sqlite3.Connection, version: int) -> None:
    con.execute("INSERT OR REPLACE INTO state(k, v) VALUES ('text_version', ?)", (str(version),))


def labelled_items(con: sqlite3.Connection) -> list[tuple]:
    """(id, key, captions json, tags json, embedded tags) of every item with words."""
    return con.execute("SELECT i.id, i.key, i.captions, i.tags, f.tags FROM items i "
                       "JOIN text_fts f ON f.rowid = i.id").fetchall()


def set_words(con: sqlite3.Connection, item_id: int, name: str, folder: str, labels: str) -> None:
    """Rewrite the name, folder and label words of an item (its embedded tags kept)."""
    con.execute("UPDATE text_fts SET name=?, folder=?, labels=? WHERE rowid=?", (name, folder, labels, item_id))


def put(con: sqlite3.Connection, item_id: int, columns: tuple[str, ...]) -> None:
    con.execute("DELETE FROM text_fts WHERE rowid=?", (int(item_id),))
    con.execute("INSERT INTO text_fts(rowid, name, folder, labels, tags) VALUES (?, ?, ?, ?, ?)",
                (int(item_id), *columns))


def delete(con: sqlite3.Connection, item_id: int) -> None:
    con.execute("DELETE FROM text_fts WHERE rowid=?", (int(item_id),))


def has_text(con: sqlite3.Connection) -> bool:
    """True when at least one item has words to search."""
    if not exists(con):
        return False
    return con.execute("SELECT 1 FROM text_fts WHERE length(name || folder || labels || tags) > 0 "
                       "LIMIT 1").fetchone() is not None


def ids_with_text(con: sqlite3.Connection) -> set[int]:
    return {r[0] for r in con.execute("SELECT rowid FROM text_fts")} if exists(con) else set()


def _filter(filt: tuple[str, list] | None) -> tuple[str, list]:
    """An SQL condition on ``items`` and its parameters as a condition on ``text_fts`` rows."""
    if filt is None:
        return "", []
    return f" AND rowid IN (SELECT id FROM items WHERE {filt[0]})", list(filt[1])


def doc_count(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT COUNT(*) FROM text_fts").fetchone()[0])


def matching(con: sqlite3.Connection, expr: str, filt: tuple[str, list] | None = None) -> set[int]:
    """Ids of the items matching the FTS5 expression ``expr`` (and passing ``filt``)."""
    extra, args = _filter(filt)
    return {r[0] for r in con.execute(f"SELECT rowid FROM text_fts WHERE text_fts MATCH ?{extra}", (expr, *args))}


def doc_freq(con: sqlite3.Connection, expr: str) -> int:
    """How many items of the whole index match ``expr``."""
    return int(con.execute("SELECT COUNT(*) FROM text_fts WHERE text_fts MATCH ?", (expr,)).fetchone()[0])


def ranked(con: sqlite3.Connection, expr: str, weights: tuple[float, ...], filt: tuple[str, list] | None = None,
           limit: int = 20000) -> list[tuple]:
    """(rowid, bm25 with per-column ``weights``, each column highlighted between ``\\x02`` and
    ``\\x03``) of the items matching ``expr`` (and passing ``filt``), best BM25 first."""
    extra, args = _filter(filt)
    hl = ", ".join(f"highlight(text_fts, {i}, char(2), char(3))" for i in range(len(weights)))
    return con.execute(f"SELECT rowid, bm25(text_fts, {', '.join(map(str, weights))}) AS r, {hl} "
                       f"FROM text_fts WHERE text_fts MATCH ?{extra} ORDER BY r LIMIT ?",
                       (expr, *args, limit)).fetchall()
