"""Full-text index of each file's words beside the vectors: SQLite FTS5 with BM25 ranking.

One row per item (``rowid`` = item id) in the index's own ``index.sqlite``, written in the
same transaction as the item's vector, so text and vectors never disagree. Columns:

=========  ====================================================  ============
column     what                                                  BM25 weight
=========  ====================================================  ============
name       file-name words (CamelCase/snake_case split, UCS)      3
folder     folder words                                          1
labels     captions and tags given by a manifest/corpus          2
tags       embedded metadata: Vorbis/ID3/INFO/bext/iXML values    2
=========  ====================================================  ============

Tokenizer ``porter unicode61 remove_diacritics 2``: case- and accent-insensitive, English
stemming ("barking" matches "bark"). Queries are split into words and OR-ed, each quoted, so
no user text is ever read as FTS5 syntax.
"""
from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from .metadata import path_words

__all__ = ["ensure_schema", "put", "delete", "has_text", "search", "item_columns", "TextHit", "COLUMNS"]

COLUMNS = ("name", "folder", "labels", "tags")
WEIGHTS = (3.0, 1.0, 2.0, 2.0)
SCHEMA = ("CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(name, folder, labels, tags, "
          "tokenize='porter unicode61 remove_diacritics 2')")
# Words too common to carry meaning in a sound description (kept out of the OR query).
STOPWORDS = frozenset("a an and are as at be by for from in into is it of on or the to with sound sounds".split())
# Embedded fields that describe the encoding, not the sound.
TECHNICAL_FIELDS = frozenset({"encoder", "software", "encoded_by", "encoding", "date", "tracknumber", "vendor"})
_TOKEN = re.compile(r"\w+", re.UNICODE)
_MARK = re.compile("\x02(.*?)\x03", re.S)


@dataclass
class TextHit:
    id: int
    score: float  # -bm25: higher is better
    matched: list[str]  # the words of the item's text that matched, as written there


def ensure_schema(con: sqlite3.Connection) -> None:
    con.execute(SCHEMA)


def item_columns(key: str, captions: list[str], tags: list[str], embedded: dict[str, str]) -> tuple[str, ...]:
    """The four column texts of one item."""
    name, folder = path_words(key)
    labels = " | ".join([*map(str, captions), *map(str, tags)])
    return name, folder, labels, " | ".join(str(v) for k, v in embedded.items() if k not in TECHNICAL_FIELDS)


def put(con: sqlite3.Connection, item_id: int, columns: tuple[str, ...]) -> None:
    con.execute("DELETE FROM text_fts WHERE rowid=?", (int(item_id),))
    con.execute("INSERT INTO text_fts(rowid, name, folder, labels, tags) VALUES (?, ?, ?, ?, ?)",
                (int(item_id), *columns))


def delete(con: sqlite3.Connection, item_id: int) -> None:
    con.execute("DELETE FROM text_fts WHERE rowid=?", (int(item_id),))


def _exists(con: sqlite3.Connection) -> bool:
    return con.execute("SELECT 1 FROM sqlite_master WHERE name='text_fts'").fetchone() is not None


def has_text(con: sqlite3.Connection) -> bool:
    """True when at least one item has words to search."""
    if not _exists(con):
        return False
    return con.execute("SELECT 1 FROM text_fts WHERE length(name || folder || labels || tags) > 0 "
                       "LIMIT 1").fetchone() is not None


def ids_with_text(con: sqlite3.Connection) -> set[int]:
    return {r[0] for r in con.execute("SELECT rowid FROM text_fts")} if _exists(con) else set()


def query_terms(query: str) -> list[str]:
    """Lower-cased words of ``query`` minus stop words (all words if only stop words)."""
    words = [w.lower() for w in _TOKEN.findall(query)]
    kept = [w for w in words if w not in STOPWORDS]
    return list(dict.fromkeys(kept or words))


def search(con: sqlite3.Connection, query: str, limit: int,
           filt: tuple[str, list] | None = None) -> list[TextHit]:
    """Items matching any word of ``query``, best BM25 first (at most ``limit``); ``filt``: an
    SQL condition on ``items`` and its parameters (:func:`.filters.where_sql`) the items must pass."""
    terms = query_terms(query)
    if not terms or not _exists(con):
        return []
    match = " OR ".join('"%s"' % t.replace('"', '""') for t in terms)
    hl = ", ".join(f"highlight(text_fts, {i}, char(2), char(3))" for i in range(len(COLUMNS)))
    extra, args = "", []
    if filt is not None:
        extra, args = f" AND rowid IN (SELECT id FROM items WHERE {filt[0]})", list(filt[1])
    rows = con.execute(f"SELECT rowid, bm25(text_fts, {', '.join(map(str, WEIGHTS))}) AS r, {hl} "
                       f"FROM text_fts WHERE text_fts MATCH ?{extra} ORDER BY r LIMIT ?",
                       (match, *args, int(limit))).fetchall()
    out = []
    for row in rows:
        seen: dict[str, None] = {}
        for text in row[2:]:
            for w in _MARK.findall(text or ""):
                seen.setdefault(w.lower(), None)
        out.append(TextHit(int(row[0]), -float(row[1]), list(seen)))
    return out
