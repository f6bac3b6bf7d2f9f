"""The ``stale`` table: items to re-embed (:mod:`soundseek.index.itemdata`)."""
from __future__ import annotations

import sqlite3


def ensure_schema(con: sqlite3.Connection) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS stale(id INTEGER PRIMARY KEY)")


def mark_all(con: sqlite3.Connection) -> int:
    """Mark every item; returns how many are marked now."""
    con.execute("INSERT OR IGNORE INTO stale(id) SELECT id FROM items")
    return int(con.execute("SELECT COUNT(*) FROM stale").fetchone()[0])


def mark(con: sqlite3.Connection, ids: list[int]) -> None:
    con.executemany("INSERT OR IGNORE INTO stale(id) VALUES(?)", [(int(i),) for i in ids])


def ids(con: sqlite3.Connection) -> set[int]:
    return {int(r[0]) for r in con.execute("SELECT id FROM stale")}


def unmark(con: sqlite3.Connection, item_id: int) -> None:
    con.execute("DELETE FROM stale WHERE id=?", (item_id,))
