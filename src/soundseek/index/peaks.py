"""Waveform thumbnails: per-file peak envelopes computed at index time from the decoded
wave, stored compactly (``N_PEAKS`` bytes per file) and drawn by the web page on a canvas.

Each byte is the maximum absolute sample of one of ``N_PEAKS`` equal slices of the file,
scaled so 255 is full scale (1.0); the page normalises to the loudest slice.
"""
from __future__ import annotations

import base64
import sqlite3

import numpy as np

__all__ = ["compute", "ensure_schema", "put", "delete", "get_many", "N_PEAKS"]

N_PEAKS = 200
SCHEMA = "CREATE TABLE IF NOT EXISTS peaks(item_id INTEGER PRIMARY KEY, data BLOB NOT NULL)"


def compute(wave: np.ndarray, n: int = N_PEAKS) -> bytes:
    """(samples,) float wave -> ``n`` bytes of per-slice peak |x| (0..255). Empty wave: zeros."""
    x = np.abs(np.asarray(wave, np.float32).reshape(-1))
    if x.size == 0:
        return bytes(n)
    edges = np.linspace(0, x.size, n + 1).astype(np.int64)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)  # short files: every slice has a sample
    idx = np.minimum(edges[:-1], x.size - 1)
    peak = np.maximum.reduceat(x, idx) if x.size >= n else x[idx]
    peak = np.nan_to_num(peak, nan=0.0, posinf=1.0)
    return np.clip(np.round(peak * 255.0), 0, 255).astype(np.uint8).tobytes()


def ensure_schema(con: sqlite3.Connection) -> None:
    con.execute(SCHEMA)


def put(con: sqlite3.Connection, item_id: int, data: bytes) -> None:
    con.execute("INSERT OR REPLACE INTO peaks(item_id, data) VALUES (?, ?)", (int(item_id), data))


def delete(con: sqlite3.Connection, item_id: int) -> None:
    con.execute("DELETE FROM peaks WHERE item_id=?", (int(item_id),))


def get_many(con: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    """id -> base64 of its peak bytes (ids without peaks are absent)."""
    if not ids or con.execute("SELECT 1 FROM sqlite_master WHERE name='peaks'").fetchone() is None:
        return {}
    out = {}
    for s in range(0, len(ids), 500):
        part = [int(i) for i in ids[s:s + 500]]
        for i, data in con.execute(f"SELECT item_id, data FROM peaks WHERE item_id IN ({','.join('?' * len(part))})",
                                   part):
            out[int(i)] = base64.b64encode(data).decode("ascii")
    return out
