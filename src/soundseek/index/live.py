"""Follow an index directory across rebuilds: :class:`LiveSearcher`.

An update commits into the same ``index.sqlite`` (a :class:`~soundseek.index.search.Searcher`
picks it up by its generation); a rebuild (``--rebuild``, a moved index) replaces the file, and
an open searcher would keep answering from the old one, or mix the old vectors with the new
rows. ``LiveSearcher`` notices a new index (the ``index_id`` SQLite keeps in its ``state``
table, or the file's inode for indexes made before it was recorded), opens a new ``Searcher``
beside the old one and swaps it in one assignment. A caller that makes several calls for one
answer (a web request) pins one searcher with :meth:`pinned` so all its calls see the same
index; a searcher whose file was replaced refuses to open a new connection to the new file
(:class:`~soundseek.index.store.IndexReplacedError`) rather than map ids to other files.
"""
from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from .search import Searcher
from .store import read_index_id

__all__ = ["LiveSearcher", "index_stamp", "reopen_like"]

log = logging.getLogger(__name__)


def index_stamp(index_dir: str | Path) -> tuple | None:
    """(index_id, device, inode) of the index in ``index_dir`` now; None while there is none
    (a rebuild between removing the old file and creating the new one)."""
    db = Path(index_dir) / "index.sqlite"
    try:
        st = os.stat(db)
        index_id = read_index_id(db)
    except (OSError, sqlite3.DatabaseError):
        return None
    return (index_id, st.st_dev, st.st_ino)


def reopen_like(searcher: Searcher) -> Searcher:
    """A new searcher of ``searcher``'s directory, opened as ``searcher`` was: through
    :meth:`Searcher.open` with the same embedder (text-mode only when it has none) and the same
    backend options (a Milvus server's ``uri``, FAISS search widths) and the calibration it was
    given (None: the new index's model's own)."""
    return type(searcher).open(searcher.index_dir, embedder=searcher.embedder, text_only=searcher.embedder is None,
                               backend_options=getattr(searcher, "backend_options", None),
                               calibration=getattr(searcher, "calibration_given", None))


class LiveSearcher:
    """A :class:`Searcher` that follows rebuilds of its directory (checked at most every
    ``every`` seconds, between calls). Attribute access goes to the pinned or current searcher,
    so it can stand wherever a ``Searcher`` is used.

    Args:
        searcher: the open searcher to start from.
        every: seconds between checks of the directory.
        reopen: builds the searcher of the new index (default: :func:`reopen_like` ``searcher``:
            the same directory, embedder and backend options).
    """

    def __init__(self, searcher: Searcher, every: float = 1.0,
                 reopen: Callable[[], Searcher] | None = None) -> None:
        self.__dict__["_current"] = searcher
        self.__dict__["_stamp"] = self._stamp_of(searcher)
        self.__dict__["_every"] = float(every)
        self.__dict__["_checked"] = time.monotonic()
        self.__dict__["_reopen"] = reopen or (lambda: reopen_like(searcher))
        self.__dict__["_lock"] = threading.Lock()
        self.__dict__["_pin"] = contextvars.ContextVar(f"soundseek-index-{id(self)}", default=None)

    @staticmethod
    def _stamp_of(searcher: Searcher) -> tuple | None:
        st = index_stamp(searcher.index_dir)
        return st if st is None or st[0] == searcher.store.index_id else None

    def due(self) -> bool:
        """True when the next :meth:`current` will look at the directory."""
        return time.monotonic() - self._checked >= self._every

    def current(self) -> Searcher:
        """The searcher of the index now in the directory (reopened if it was rebuilt)."""
        now = time.monotonic()
        if now - self._checked < self._every:
            return self._current
        with self._lock:
            if now - self._checked < self._every:
                return self._current
            self.__dict__["_checked"] = now
            stamp = index_stamp(self._current.index_dir)
            if stamp is None or stamp == self._stamp or (stamp[0] is not None and self._stamp is not None
                                                         and stamp[0] == self._stamp[0]):
                return self._current
            try:
                new = self._reopen()
            except Exception as e:  # noqa: BLE001 - mid-rebuild or unusable: keep answering from the old one
                log.warning("index %s was replaced but cannot be opened yet (%s); still serving the previous one",
                            self._current.index_dir, e)
                return self._current
            self.__dict__["_stamp"] = self._stamp_of(new) or stamp
            self.__dict__["_current"] = new  # one assignment: callers see the old or the new, never a mix
            log.warning("index %s was rebuilt: now serving %d items", new.index_dir, new.store.count())
        return self._current

    @contextlib.contextmanager
    def pinned(self, searcher: Searcher | None = None) -> Iterator[Searcher]:
        """Within the block (and the threads it hands ``contextvars`` to) every attribute comes
        from one searcher: ``searcher`` (a :meth:`current` taken earlier) or the current one."""
        token = self._pin.set(searcher or self.current())
        try:
            yield self._pin.get()
        finally:
            self._pin.reset(token)

    def _target(self) -> Searcher:
        return self._pin.get() or self.current()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._target(), name, value)

    def __len__(self) -> int:
        return len(self._target())
