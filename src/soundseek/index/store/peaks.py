"""The ``peaks`` table: one waveform envelope (:mod:`soundseek.index.peaks`) per item."""
from __future__ import annotations

import sqlite3

SCHEMA = "CREATE TABLE IF NOT EXISTS peaks(item_id INTEGER PRIMARY KEY, data BLOB NOT NULL)"


def ensure_schema(con: sqlite3.Connection) -> None:
    con.execute(SCHEMA)


def put(con: sqlite3.Connection, item_id: int, data: bytes) -> None:
    con.execute("INSERT OR REPLACE INTO peaks(item_id, data) VALUES (?, ?)", (int(item_id), data))


def delete(con: sqlite3.Connection, item_id: int) -> None:
    con.execute("DELETE FROM peaks WHERE item_id=?", (int(item_id),))


def get_many(con: sqlite3.Connection, ids: list[int]) -> dict[int, bytes]:
    """id -> its peak bytes (ids without peaks, or an index without the table, are absent)."""
    if not ids or con.execute("SELECT 1 FROM sqlite_master WHERE name='peaks'").fetchone() is None:
        return {}
    out = {}
    for s in range(0, len(ids), 500):
        part = [int(i) for i in ids[s:s + 500]]
        for i, data in con.execute(f"SELECT item_id, data FROM peaks WHERE item_id IN ({','.join('?' * len(part))})",
                                   part):
            out[int(i)] = data
    return out


def short(con: sqlite3.Connection, n: int) -> list[tuple[int, int]]:
    """(item id, bytes) of the envelopes that are not ``n`` bytes long."""
    return con.execute("SELECT item_id, length(data) FROM peaks WHERE length(data) != ?", (n,)).fetchall()
