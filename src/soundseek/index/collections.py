"""Named collections of sounds (favourites, "doors for scene 12", ...) kept beside an index.

A collection holds files by **content hash** (the SHA-1 the indexer records for every file),
so a file stays in its collections when it is renamed or moved within the indexed folder
and when the folder is re-indexed; the last path seen is kept only to name a file that has
since left the index. Collections live in their own SQLite file, ``collections.sqlite`` in
the index directory, because ``soundseek index --rebuild`` (and the automatic rebuild when
the model changes) replaces ``index.sqlite``: a rebuild keeps every collection.

    from soundseek.index.collections import Collections
    cols = Collections(store)                  # store: the index's Store
    cols.add("favourites", [item_id])
    cols.items("favourites")                   # [{"sha1", "key", "id" (None if gone), ...}]
    cols.export("favourites", "picked", how="links")

``FAVOURITES`` is the collection the page's star toggles.
"""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
import unicodedata
from pathlib import Path
from typing import Any, Iterable

from ..fileio import atomic_write_text
from .store import Store
from .store import collections as db
from .store.collections import DB_NAME, SCHEMA  # noqa: F401

__all__ = ["Collections", "FAVOURITES", "EXPORT_KINDS", "check_name", "MAX_NAME", "MAX_ITEMS"]

FAVOURITES = "favourites"
EXPORT_KINDS = ("list", "links", "copies")
MAX_NAME = 80
MAX_ITEMS = 100_000  # per collection: bounded work for a show or an export
_BAD_NAME = re.compile(r"[/\\\x00-\x1f\x7f]")


def check_name(name: str) -> str:
    """A collection name: 1..80 visible characters, no slash, backslash or control character.
    ValueError otherwise."""
    if not isinstance(name, str):
        raise ValueError("a collection name must be text")
    name = " ".join(name.split())
    if not name:
        raise ValueError("a collection name cannot be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"collection name too long ({len(name)} characters, limit {MAX_NAME})")
    if _BAD_NAME.search(name) or any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in name):
        raise ValueError(f"collection name {name!r} has a slash, backslash or control character")
    return name


class Collections:
    """The collections of one index.

    Args:
        store: the index's :class:`~soundseek.index.store.Store` (items are looked up there).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = Path(store.dir) / DB_NAME

    # --- storage ---------------------------------------------------------------------------
    def _connect(self, write: bool) -> sqlite3.Connection | None:
        return db.connect(self.path, self.store.dir, write)

    def _write(self, fn) -> Any:
        return db.write(self.path, self.store.dir, fn)

    # --- reading ---------------------------------------------------------------------------
    def names(self) -> list[dict]:
        """``[{"name", "count", "created"}]``, favourites first, then by name."""
        con = self._connect(False)
        if con is None:
            return []
        try:
            rows = db.names(con)
        finally:
            con.close()
        out = [{"name": r[0], "count": int(r[2]), "created": r[1]} for r in rows]
        return sorted(out, key=lambda c: (c["name"] != FAVOURITES, c["name"].casefold()))

    def exists(self, name: str) -> bool:
        return any(c["name"] == name for c in self.names())

    def items(self, name: str) -> list[dict]:
        """The files of collection ``name`` in the order added: ``{"sha1", "key", "added",
        "id", "path", "abs_path"}``; ``id``/``abs_path`` are None for a file no longer in the
        index (``key`` is then the last path it had). KeyError for an unknown collection."""
        name = check_name(name)
        con = self._connect(False)
        if con is None:
            raise self._unknown(name)
        try:
            if not db.exists(con, name):
                raise self._unknown(name)
            rows = db.members(con, name, MAX_ITEMS)
        finally:
            con.close()
        found = self.store.by_sha1([r["sha1"] for r in rows])
        out = []
        for r in rows:
            item = found.get(r["sha1"])
            out.append({"sha1": r["sha1"], "key": item["key"] if item else r["key"], "added": r["added"],
                        "id": item["id"] if item else None, "path": item["key"] if item else None,
                        "abs_path": item["path"] if item else None})
        return out

    def membership(self, item_ids: Iterable[int]) -> dict[int, list[str]]:
        """item id -> names of the collections holding that file (ids in none are absent)."""
        meta = self.store.items([int(i) for i in item_ids])
        by_sha = {}
        for i, m in meta.items():
            if m.get("sha1"):
                by_sha.setdefault(m["sha1"], []).append(i)
        con = self._connect(False)
        if con is None or not by_sha:
            if con is not None:
                con.close()
            return {}
        out: dict[int, list[str]] = {}
        try:
            shas = list(by_sha)
            for s in range(0, len(shas), 500):
                part = shas[s:s + 500]
                for sha, coll in db.holding(con, part):
                    for i in by_sha[sha]:
                        out.setdefault(i, []).append(coll)
        finally:
            con.close()
        return out

    # --- writing ---------------------------------------------------------------------------
    def create(self, name: str) -> str:
        """Create an empty collection (no error if it exists); returns the cleaned name."""
        name = check_name(name)
        self._write(lambda con: db.create(con, name, time.time()))
        return name

    def add(self, name: str, item_ids: Iterable[int]) -> int:
        """Add indexed items (by id) to ``name``, creating it; returns how many were new.
        KeyError names an id that is not in the index."""
        name = check_name(name)
        ids = [int(i) for i in item_ids]
        meta = self.store.items(ids)
        missing = [i for i in ids if i not in meta or not meta[i].get("sha1")]
        if missing:
            raise KeyError(f"no indexed file with id {missing[0]}")

        def add(con: sqlite3.Connection) -> int:
            now = time.time()
            db.create(con, name, now)
            have = db.size(con, name)
            n = 0
            for i in ids:
                if have + n >= MAX_ITEMS:
                    raise ValueError(f"collection {name!r} is full ({MAX_ITEMS} files)")
                n += db.add(con, name, meta[i]["sha1"], meta[i]["key"], now)
            return n
        return self._write(add)

    def remove(self, name: str, item_ids: Iterable[int] = (), sha1s: Iterable[str] = ()) -> int:
        """Remove files (by item id, or by content hash for files that left the index) from
        ``name``; returns how many were removed. KeyError for an unknown collection."""
        name = check_name(name)
        ids = [int(i) for i in item_ids]
        shas = {m["sha1"] for m in self.store.items(ids).values() if m.get("sha1")} | set(sha1s)
        if not self.exists(name):
            raise self._unknown(name)
        return self._write(lambda con: sum(db.remove(con, name, s) for s in shas))

    def delete(self, name: str) -> None:
        """Delete collection ``name`` (the files stay where they are). KeyError if unknown."""
        name = check_name(name)
        if not self.exists(name):
            raise self._unknown(name)
        self._write(lambda con: db.delete(con, name))

    # --- export ----------------------------------------------------------------------------
    def export(self, name: str, dest: str | Path, how: str = "list") -> tuple[Path, int]:
        """Write collection ``name`` out: ``list`` a text file of absolute paths (one a line,
        written atomically), ``links`` a new folder of symbolic links to the files, ``copies`` a
        new folder of copies. Files no longer in the index are skipped. Returns (dest, files
        written). FileExistsError when ``dest`` exists (a folder is never merged into)."""
        if how not in EXPORT_KINDS:
            raise ValueError(f"export as one of {', '.join(EXPORT_KINDS)}, got {how!r}")
        present = [it for it in self.items(name) if it["abs_path"]]
        dest = Path(dest)
        if how == "list":
            if dest.is_dir():
                raise FileExistsError(f"{dest} is a folder; give a file name for the list")
            atomic_write_text(dest, "".join(it["abs_path"] + "\n" for it in present))
            return dest, len(present)
        if dest.exists() or dest.is_symlink():
            raise FileExistsError(f"{dest} already exists; give a new folder name")
        tmp = dest.with_name(f".{dest.name}.part-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        used: set[str] = set()
        try:
            for it in present:
                src = Path(it["abs_path"])
                fname = _unique(src.name, used)
                if how == "links":
                    os.symlink(src, tmp / fname)
                else:
                    shutil.copy2(src, tmp / fname, follow_symlinks=False)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest, len(present)

    def _unknown(self, name: str) -> KeyError:
        have = [c["name"] for c in self.names()]
        return KeyError(f"no collection {name!r}; have: {', '.join(have) if have else 'none yet'}")


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``stem-2.ext``, ``stem-3.ext``, ... when a file of that name is already written."""
    out, n = name, 1
    stem, dot, ext = name.rpartition(".")
    if not stem:
        stem, dot, ext = name, "", ""
    while out.casefold() in used:
        n += 1
        out = f"{stem}-{n}{dot}{ext}"
    used.add(out.casefold())
    return out
