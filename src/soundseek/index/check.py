"""``soundseek index --check``: verify every stored artefact of an index, repair what can be
repaired from the source of truth, and say what was found in one line per artefact.

Checked: the manifest; the ``.lock`` file; SQLite's own ``integrity_check``; every stored vector
(items and the windows of long recordings, counted separately) has the index's width and finite
values; every frame-feature reference points inside its chunk file at finite values; every
peak envelope has its length; the FAISS files against their stamped CRC-32s; the vector file
holds as many vectors as SQLite has rows (items *plus* windows).

Repairs: an item whose vector, windows, frames or peaks are bad is marked for re-embedding
(``stale`` table, :mod:`.itemdata`): the next ``soundseek index`` run re-decodes its file and
rewrites them under the same id, and until then searches never use the bad data (malformed or
non-finite vectors are left out of the vector file, bad frames are read as missing so
re-ranking falls back to the index score). The vector file is rebuilt from SQLite when stale or
damaged. Nothing is deleted: "--rebuild" is advised only for a database SQLite cannot read.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from .integrity import IndexDamagedError, file_crc32, read_json, repair_hint
from .store import check as rows

__all__ = ["check_index"]


def check_index(index_dir: str | Path, repair: bool = True) -> list[tuple[str, str]]:
    """Verify every file of an index; returns [(artefact, "ok ..." | problem)]. A problem
    starts with "DAMAGED" when data is lost or the index cannot be used, "repaired"/"marked"
    when it was fixed or will be by the next index run. ``repair=False`` modifies nothing."""
    from .manifest import BACKEND_STATE, read_manifest

    d = Path(index_dir)
    out: list[tuple[str, str]] = []
    lock = d / ".lock"
    if lock.exists() and not lock.is_file():
        out.append((".lock", "DAMAGED: not a file (a directory?); remove it so the index can be written"))
    try:
        man = read_manifest(d)
    except IndexDamagedError as e:
        return out + [("manifest.json", f"DAMAGED: {e}")]
    if man is None:
        return out + [("manifest.json", f"missing: no index at {d}")]
    out.append(("manifest.json", "ok"))
    repair_cmd = repair_hint(d, man.get("source"))
    db = d / "index.sqlite"
    try:
        from .integrity import check_sqlite_file

        check_sqlite_file(db, repair_cmd)
        con = rows.connect(db, write=repair)
        try:
            res = rows.integrity(con)
            if res != ["ok"]:
                raise IndexDamagedError(db, "; ".join(res[:3]), repair_cmd)
            out.extend(_check_rows(d, con, int(man["dim"]), repair))
        finally:
            con.close()
    except (IndexDamagedError, sqlite3.DatabaseError) as e:
        err = e if isinstance(e, IndexDamagedError) else IndexDamagedError(db, str(e), repair_cmd)
        if not repair or not db.is_file():
            out.append(("index.sqlite", f"DAMAGED: {err}"))
            return out
        try:
            kept, failures = salvage(d)
        except (sqlite3.DatabaseError, OSError) as e2:
            out.append(("index.sqlite", f"DAMAGED: {err}; salvage failed ({e2})"))
            return out
        out.append(("index.sqlite", f"repaired: {kept} readable rows copied into a new index.sqlite "
                                    f"({failures} unreadable stretches skipped; the damaged file is kept as "
                                    "index.sqlite.damaged); run `soundseek index` on the source to re-add "
                                    f"what was lost ({err.why})"))
        return out + [x for x in check_index(d, repair=False) if x[0] not in ("manifest.json", ".lock")]
    state_path = d / BACKEND_STATE
    try:
        state = read_json(state_path, "backend state", "rebuilt from index.sqlite on the next open") \
            if state_path.is_file() else {}
        if not isinstance(state, dict):
            raise IndexDamagedError(state_path, "not a JSON object", "rebuilt from index.sqlite on the next open")
        out.append((BACKEND_STATE, "ok" if state else "missing (rebuilt from index.sqlite on the next open)"))
    except IndexDamagedError as e:
        out.append((BACKEND_STATE, f"DAMAGED: {e}"))
        state = {}
    if man.get("backend") == "faiss":
        out.extend(_check_faiss(d, man, state, repair))
    return out


def _check_rows(d: Path, con: sqlite3.Connection, dim: int, repair: bool) -> list[tuple[str, str]]:
    from . import itemdata
    from .peaks import N_PEAKS
    from .store import FrameStore
    from .store import peaks as stored_peaks

    tables = rows.tables(con)
    n_items = rows.count(con, "items")
    has_windows = "windows" in tables
    n_windows = rows.count(con, "windows") if has_windows else 0
    out = [("index.sqlite", f"ok ({n_items} files, {n_windows} windows)")]
    bad: dict[int, str] = {}  # item id -> what is wrong
    width = 4 * dim

    def vectors(found, what: str) -> None:
        for item_id, blob in found:
            if len(blob) != width:
                bad.setdefault(int(item_id), f"{what} has {len(blob)} bytes, not {width}")
            elif not np.isfinite(np.frombuffer(blob, np.float32)).all():
                bad.setdefault(int(item_id), f"{what} has NaN/Inf values")

    vectors(rows.vectors(con, "items"), "vector")
    if has_windows:
        vectors(rows.vectors(con, "windows"), "window vector")
    frames = FrameStore(d / "frames")
    n_frames = 0
    for table in ("items", "windows") if has_windows else ("items",):
        for item_id, *ref in rows.frame_refs(con, table):
            n_frames += 1
            why = frames.problem(*ref)
            if why:
                bad.setdefault(int(item_id), f"frame features {why}")
    if "peaks" in tables:
        for item_id, n in stored_peaks.short(con, N_PEAKS):
            bad.setdefault(int(item_id), f"waveform peaks have {n} bytes, not {N_PEAKS}")
    if not bad:
        out.append(("vectors, frames, peaks", f"ok ({n_items + n_windows} vectors, {n_frames} frame arrays)"))
        return out
    first = ", ".join(f"id {i}: {w}" for i, w in list(bad.items())[:3])
    if repair:
        with rows.transaction(con):
            itemdata.ensure_schema(con)
            itemdata.mark_for_reembedding(con, list(bad))
        out.append(("vectors, frames, peaks", f"repaired: {len(bad)} file(s) with bad stored data ({first}) "
                                              "are left out of searches and re-embedded by the next "
                                              "`soundseek index` run, keeping their ids"))
    else:
        out.append(("vectors, frames, peaks", f"DAMAGED: {len(bad)} file(s) with bad stored data ({first}); "
                                              "run `soundseek index --check` to repair"))
    return out


def _check_faiss(d: Path, man: dict, state: dict, repair: bool) -> list[tuple[str, str]]:
    from .store import Store

    out = []
    sums = state.get("checksums") or {}
    damaged = False
    for name in ("vectors.faiss", "vectors.faiss.meta.json"):
        p = d / name
        if not p.is_file():
            out.append((name, "missing (rebuilt from index.sqlite on the next open)"))
        elif name not in sums:
            out.append((name, "no checksum recorded (written by an older version; re-saved on the next run)"))
        elif file_crc32(p) != sums[name]:
            damaged = True
            out.append((name, "DAMAGED: checksum mismatch (rebuilt from index.sqlite on the next open or index run)"))
        else:
            out.append((name, "ok (checksum verified)"))
    if state.get("count") is None:
        return out
    store = Store(d)
    try:
        n, gen = store.vector_count(), store.generation
        stale = int(state["count"]) != n or int(state.get("generation", -1)) != gen
        if stale or (damaged and repair):
            if repair:
                from .manifest import open_backend

                try:
                    open_backend(d, store, man, save=True)
                    out.append(("vectors.faiss", f"repaired: rebuilt from index.sqlite ({n} vectors)"))
                except OSError as e:
                    out.append(("vectors.faiss", f"stale (has {state['count']} vectors, index.sqlite {n}); "
                                                 f"not rebuilt now ({e}); brought up to date on the next open"))
            else:
                out.append(("vectors.faiss", f"stale (has {state['count']} vectors, index.sqlite {n}); "
                                             "brought up to date on the next open"))
    finally:
        store.close()
    return out


SALVAGED = ("state", "items", "tombstones", "problems", "log", "windows", "peaks", "stale")


def salvage(index_dir: str | Path) -> tuple[int, int]:
    """Copy every row SQLite can still read from a damaged ``index.sqlite`` into a fresh one
    (same ids), keep the damaged file as ``index.sqlite.damaged`` and drop the vector file's
    state (rebuilt from the new database on the next open). The words of the text index are
    re-derived by the next ``soundseek index`` run. Returns (rows kept, read failures)."""
    import os
    import shutil

    from . import itemdata
    from .store import Store

    d = Path(index_dir)
    db = d / "index.sqlite"
    work = d / ".salvage"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    new = Store(work, create=True)
    try:
        itemdata.ensure_schema(new.con)
        kept, failures = rows.copy_readable(db, new.con, SALVAGED)
    finally:
        new.close()
    os.replace(db, d / "index.sqlite.damaged")
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    os.replace(work / "index.sqlite", db)
    for suffix in ("-wal", "-shm"):
        Path(str(work / "index.sqlite") + suffix).unlink(missing_ok=True)
    shutil.rmtree(work, ignore_errors=True)
    (d / "backend_state.json").unlink(missing_ok=True)
    return kept, failures
