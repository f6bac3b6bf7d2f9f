"""What an index keeps beside each item's vector — its words (:mod:`.textindex`), its
waveform peaks (:mod:`.peaks`) and the windows of a long recording (:mod:`.moments`) —
written and forgotten together, inside the indexer's transaction for that item."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np

from . import moments, peaks, textindex

__all__ = ["ItemData", "ensure_schema", "attach", "forget"]


@dataclass
class ItemData:
    text: tuple[str, ...] | None = None  # textindex.item_columns(...)
    peaks: bytes | None = None
    spans: list[tuple[float, float]] = field(default_factory=list)  # window (start, end) seconds
    window_emb: np.ndarray | None = None
    window_frames: list = field(default_factory=list)  # frame features per window (re-ranking, refinement)
    window_refs: list | None = None  # FrameStore references of window_frames, once written


def ensure_schema(con: sqlite3.Connection) -> None:
    textindex.ensure_schema(con)
    peaks.ensure_schema(con)
    moments.ensure_schema(con)


def attach(con: sqlite3.Connection, item_id: int, gen: int, data: ItemData) -> None:
    """Replace what is kept beside ``item_id`` with ``data``."""
    moments.drop(con, item_id, gen)
    if data.text is not None:
        textindex.put(con, item_id, data.text)
    if data.peaks is not None:
        peaks.put(con, item_id, data.peaks)
    if data.spans and data.window_emb is not None:
        moments.put(con, item_id, data.spans, data.window_emb, gen, data.window_refs)


def forget(con: sqlite3.Connection, item_id: int, gen: int) -> None:
    """Drop everything kept beside ``item_id`` (its item row is deleted by the caller)."""
    textindex.delete(con, item_id)
    peaks.delete(con, item_id)
    moments.drop(con, item_id, gen)
