"""What an index keeps beside each item's vector — its words (:mod:`.textindex`), its
waveform peaks (:mod:`.peaks`) and the windows of a long recording (:mod:`.moments`) —
written and forgotten together, inside the indexer's transaction for that item.

The ``stale`` table lists the items whose vectors were made under build settings the index
no longer has (window, hop, decode limit): the indexer re-embeds them, and an item leaves the
list in the transaction that writes its new vectors, so an interrupted re-embedding resumes."""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

import numpy as np

from . import moments, peaks, textindex
from .store import itemdata as _stale

__all__ = ["ItemData", "ensure_schema", "attach", "forget", "mark_stale", "mark_for_reembedding", "stale_ids"]


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
    _stale.ensure_schema(con)


def mark_stale(con: sqlite3.Connection) -> int:
    """Mark every item as embedded under old settings; returns how many are stale now."""
    return _stale.mark_all(con)


def mark_for_reembedding(con: sqlite3.Connection, ids: list[int]) -> None:
    """Mark ``ids`` to be re-embedded by the next index run (their stored data is bad)."""
    _stale.mark(con, ids)


def stale_ids(con: sqlite3.Connection) -> set[int]:
    return _stale.ids(con)


def attach(con: sqlite3.Connection, item_id: int, gen: int, data: ItemData) -> None:
    """Replace what is kept beside ``item_id`` with ``data`` (its vectors are current now)."""
    _stale.unmark(con, item_id)
    moments.drop(con, item_id, gen)
    if data.text is not None:
        textindex.put(con, item_id, data.text)
    if data.peaks is not None:
        peaks.put(con, item_id, data.peaks)
    if data.spans and data.window_emb is not None:
        moments.put(con, item_id, data.spans, data.window_emb, gen, data.window_refs)


def forget(con: sqlite3.Connection, item_id: int, gen: int) -> None:
    """Drop everything kept beside ``item_id`` (its item row is deleted by the caller)."""
    _stale.unmark(con, item_id)
    textindex.delete(con, item_id)
    peaks.delete(con, item_id)
    moments.drop(con, item_id, gen)
