"""Waveform thumbnails: per-file peak envelopes computed at index time from the decoded
wave, stored compactly (``N_PEAKS`` bytes per file) and drawn by the web page on a canvas.

Each byte is the maximum absolute sample of one of ``N_PEAKS`` equal slices of the file,
scaled so 255 is full scale (1.0); the page normalises to the loudest slice.
"""
from __future__ import annotations

import base64
import sqlite3

import numpy as np

from .store import peaks as _stored
from .store.peaks import SCHEMA, delete, ensure_schema, put  # noqa: F401

__all__ = ["compute", "ensure_schema", "put", "delete", "get_many", "N_PEAKS"]

N_PEAKS = 200


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


def get_many(con: sqlite3.Connection, ids: list[int]) -> dict[int, str]:
    """id -> base64 of its peak bytes (ids without peaks are absent)."""
    return {i: base64.b64encode(data).decode("ascii") for i, data in _stored.get_many(con, ids).items()}
