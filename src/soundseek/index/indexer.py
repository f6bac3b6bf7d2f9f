"""Build and update a search index from a folder or corpus (METHODS.md §8).

``build_index`` decodes files in a thread pool while the embedder runs on the main thread,
commits each batch (frame bytes fsync'ed first, then one SQLite transaction with vectors,
metadata and problems), so ``kill -9`` at any moment loses at most the batch in flight and
a rerun continues with the same ids. A second run embeds only new/changed files (size +
mtime, then sha1) and removes deleted ones. Bad files are skipped and reported, never fatal.
"""
from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import stat
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..safe_open import file_kind, open_regular, printable
from .backends.base import BACKENDS
from . import itemdata, moments, peaks, textindex
from .embedder import check_embedder
from .integrity import IndexDamagedError, disk_full_error, is_disk_full
from .metadata import read_tags
from .manifest import (FORMAT_VERSION, IndexLock, check_compatible, open_backend, outdated_encoder,
                       read_manifest, write_json_atomic, MANIFEST)
from .source import UNREADABLE_FOLDER, Entry, enumerate_source
from .store import Store, name_value, shown_name
from .store import items as item_rows

__all__ = ["build_index", "IndexReport", "load_wave"]


def load_wave(path: str | Path, sample_rate: int, max_seconds: float | None = None, **limits: Any
              ) -> tuple[np.ndarray, dict]:
    """Alias of :func:`soundseek.audio.io.load_wave` (its home)."""
    from ..audio.io import load_wave as load

    return load(path, sample_rate, max_seconds, **limits)


_TRUNCATED = "cut short: the {:.1f} s readable indexed (the data ends before its header says)"
MAX_CHANNELS = 32  # files declaring more channels are skipped (a 64-channel Ogg decodes for minutes)
FILE_SECONDS = 120.0  # wall-time limit of decoding + resampling one file


@dataclass
class IndexReport:
    """What a :func:`build_index` run did. ``skipped`` lists (key, reason)."""

    index_dir: str
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    clamped: list[tuple[str, float]] = field(default_factory=list)  # (key, seconds kept) of over-long files
    truncated: list[tuple[str, float]] = field(default_factory=list)  # (key, seconds readable) of cut-short files
    total: int = 0  # items in the index after the run
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{self.index_dir}: {self.total} items (+{self.added} new, {self.updated} updated, "
                f"-{self.removed} removed, {self.unchanged} unchanged, {len(self.skipped)} skipped) "
                f"in {self.seconds:.1f}s")


@dataclass
class _Work:
    entry: Entry
    size: int
    mtime_ns: int
    row: Any  # existing sqlite row or None
    sha1: str = ""
    wave: np.ndarray | None = None
    info: dict | None = None
    error: str | None = None
    same_content: bool = False
    mode: int | None = None
    dev_ino: tuple[int, int] | None = None
    stale: bool = False  # indexed under other build settings: re-embed even if the content is the same
    unreadable: bool = False  # no permission now: its entry and id are kept, retried next run
    data: itemdata.ItemData = field(default_factory=itemdata.ItemData)


def _sha1(path: Path) -> tuple[str, os.stat_result]:
    """(sha1, fstat) of the regular file at ``path``, read from one descriptor."""
    h = hashlib.sha1()
    fd, st = open_regular(path)  # never blocks on a FIFO swapped in after the scan
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest(), st


def _ordered(ex: ThreadPoolExecutor, fn: Callable, items: list, window: int) -> Iterator:
    """``ex.map`` with a bounded number of items in flight (results in input order)."""
    it, q = iter(items), deque()
    for x in it:
        q.append(ex.submit(fn, x))
        if len(q) >= window:
            break
    while q:
        f = q.popleft()
        nxt = next(it, _END)
        if nxt is not _END:
            q.append(ex.submit(fn, nxt))
        yield f.result()


_END = object()
UNREADABLE = "unreadable: no permission"  # reason of a file that could not be opened for lack of permission


_SHAPING = ("window", "hop", "max_seconds")  # build settings that shape what an item's vectors are


def _settings(index_dir: Path, embedder: Any, rebuild: bool, window: float | None, hop: float | None,
              max_seconds: float | None) -> tuple[float, float, float | None]:
    """(window, hop, max_seconds) for a build into ``index_dir``.

    An update keeps the settings the index was built with unless they are given. A given value
    that differs from the stored one marks every indexed file stale (:func:`itemdata.mark_stale`)
    before the manifest records the new value, so the build re-embeds them all and no index mixes
    vectors made under two settings (old files with 600-s windows beside new ones with 10-s ones).
    """
    try:
        man = None if rebuild else read_manifest(index_dir)
    except IndexDamagedError:
        man = None  # reported (or wiped, with rebuild) by _init_index
    stored = {k: man[k] for k in _SHAPING if k in man} if man else {}
    if window is None and "window" in stored:
        window = stored["window"]
        hop = stored.get("hop") if hop is None else hop
    if max_seconds is None and "max_seconds" in stored:
        max_seconds = stored["max_seconds"]
    window, hop = moments.default_window(embedder, window, hop)
    now = {"window": window, "hop": hop, "max_seconds": max_seconds}
    changed = [f"{k} {stored[k]} -> {now[k]}" for k in _SHAPING
               if k in stored and stored[k] != now[k] and not (k == "hop" and window == stored.get("window") == 0)]
    if changed and (index_dir / "index.sqlite").is_file():
        store = Store(index_dir)
        try:
            with store.transaction() as con:
                itemdata.ensure_schema(con)
                n = itemdata.mark_stale(con)
        finally:
            store.close()
        if n:
            logging.getLogger(__name__).warning("Re-embedding the %d files of the index %s: %s.", n, index_dir,
                                                ", ".join(changed))
    return window, hop, max_seconds


def _init_index(index_dir: Path, embedder: Any, backend: str, backend_options: dict, rebuild: bool,
                kind: str, extra: dict) -> Store:
    BACKENDS.get(backend)  # unknown names: KeyError listing the valid ones
    try:
        man = read_manifest(index_dir)
    except IndexDamagedError:
        if not rebuild:
            raise
        man = {}  # damaged manifest: wiped with the rest below
    why = outdated_encoder(man, embedder) if man is not None and not rebuild else None
    if why:  # same model, vectors from an earlier encoder computation: rebuild without being asked
        logging.getLogger(__name__).warning("Rebuilding the index %s from scratch: %s.", index_dir, why)
        rebuild = True
    if man is not None and rebuild:
        for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "backend_state.json",
                     "vectors.faiss", "vectors.faiss.meta.json", MANIFEST):
            (index_dir / name).unlink(missing_ok=True)
        shutil.rmtree(index_dir / "frames", ignore_errors=True)
        man = None
    if man is not None:
        check_compatible(man, embedder, index_dir)
        if man.get("kind", "clips") != kind:
            raise ValueError(f"{index_dir} is a {man.get('kind')!r} index, not {kind!r}")
        if man["backend"] != backend or (backend_options and man.get("backend_options") != backend_options):
            man["backend"], man["backend_options"] = backend, backend_options  # switch: rebuilt on sync
        man.update(extra, updated=time.time())
    else:
        man = {"format": "soundseek-index", "version": FORMAT_VERSION, "kind": kind,
               "fingerprint": embedder.fingerprint(), "dim": int(embedder.dim),
               "sample_rate": int(embedder.sample_rate), "backend": backend,
               "backend_options": backend_options, "created": time.time(), "updated": time.time(), **extra}
    index_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(index_dir / MANIFEST, man)
    return Store(index_dir, create=True)


def build_index(source: str | Path, embedder: Any, index_dir: str | Path, sharded: bool | None = None,
                **options: Any) -> IndexReport | None:
    """Index (or update the index of) a folder or corpus; the options are :func:`_build`'s.

    ``sharded``: every process of the ``torch.distributed`` group (``torchrun ... soundseek
    index``) embeds its share of the files the index does not hold yet, and rank 0 writes the
    index from the results (:mod:`soundseek.index.sharded`); ranks other than 0 return None.
    None (default): sharded when a process group of more than one rank is initialised.

    A full disk ends the run with :class:`~soundseek.index.integrity.DiskFullError` (one line
    naming the file system and the space needed); every batch committed before stays indexed.
    """
    from .. import distributed as dist

    if dist.world_size() > 1 if sharded is None else sharded:
        from .sharded import build_index_sharded

        return build_index_sharded(source, embedder, index_dir, write=_build_guarded, **options)
    return _build_guarded(source, embedder, index_dir, **options)


def _build_guarded(source: str | Path, embedder: Any, index_dir: str | Path, **options: Any) -> IndexReport:
    """:func:`_build`, a full disk turned into one :class:`DiskFullError` line."""
    try:
        return _build(source, embedder, index_dir, **options)
    except (OSError, sqlite3.DatabaseError, RuntimeError) as e:
        if not is_disk_full(e):
            raise
        raise disk_full_error(index_dir) from None


def _build(source: str | Path, embedder: Any, index_dir: str | Path, backend: str = "faiss",
                backend_options: dict | None = None, batch_size: int = 16, workers: int = 2,
                progress: bool = True, rebuild: bool = False, max_seconds: float | None = None,
                format: str = "auto", retry_failed: bool = False, model: str | None = None,
                keep_frames: bool = True, window: float | None = None, hop: float | None = None) -> IndexReport:
    """Index (or update the index of) a folder or corpus.

    Args:
        source: folder (recursive; wav/flac/ogg/oga/mp3/aiff) or manifest/corpus path.
        embedder: an :class:`~soundseek.index.embedder.Embedder`.
        index_dir: directory holding the index (created).
        backend: ``faiss`` | ``milvus``; backend_options: e.g. ``{"index_type": "hnsw"}``,
            ``{"uri": "http://host:19530", "collection": "sfx"}``.
        batch_size: clips per embedder call and per committed transaction.
        workers: decoding threads (decoding overlaps embedding; 2 = both cores busy).
        rebuild: wipe an existing index first (needed when the embedder changed).
        max_seconds: decode at most this many seconds per file (None: whole file).
        format: corpus format for ``load_corpus`` (``auto``: folder scan for a directory).
        retry_failed: re-try files that failed before and did not change.
        model: model path recorded in the manifest (so ``soundseek search`` can reload it).
        keep_frames: store frame features for re-ranking (False saves disk; rerank then off).
        window, hop: files longer than ``window`` seconds are also indexed as windows every
            ``hop`` seconds (:mod:`.moments`); default the embedder's clip length (10 s for the
            shipped model) and half of it; ``window=0`` turns windows off. An update keeps the
            ``window``, ``hop`` and ``max_seconds`` the index was built with unless given; a
            different value re-embeds every file (:func:`_settings`).
    Returns:
        :class:`IndexReport`; skipped files are also printed (when ``progress``) and logged.
    Raises:
        IndexMismatchError: existing index built with another embedder fingerprint.
    """
    t0 = time.time()
    check_embedder(embedder)
    index_dir = Path(index_dir)
    if batch_size <= 0 or workers <= 0:
        raise ValueError(f"batch_size and workers must be positive, got {batch_size}, {workers}")
    root, entries, problems = enumerate_source(source, format)  # scan
    report = IndexReport(str(index_dir))
    index_dir.mkdir(parents=True, exist_ok=True)
    with IndexLock(index_dir):
        window, hop, max_seconds = _settings(index_dir, embedder, rebuild, window, hop, max_seconds)
        store = _init_index(index_dir, embedder, backend, dict(backend_options or {}), rebuild, "clips",
                            {"source": str(Path(source).absolute()), "root": str(root), "model": model,
                             "max_seconds": max_seconds, "window": window, "hop": hop})
        with store.transaction() as con:
            itemdata.ensure_schema(con)
        known, failed, stale = store.known(), store.problems(), itemdata.stale_ids(store.con)
        _remove_gone(store, known, entries, problems, report)
        todo = _plan(store, entries, problems, known, failed, stale, retry_failed, report)
        _embed_and_write(store, embedder, todo, report, max_seconds=max_seconds, batch_size=batch_size,
                         workers=workers, progress=progress, keep_frames=keep_frames, windows=(window, hop))
        _finish(index_dir, store, report, t0)
    if progress:
        _print_report(report)
    return report


def _remove_gone(store: Store, known: dict, entries: list[Entry], problems: list[tuple[str, str]],
                 report: IndexReport) -> None:
    """Removals: only files that are gone (not those of a folder that cannot be listed now)."""
    present = {e.key for e in entries}
    hidden = tuple(k for k, why in problems if why.startswith(UNREADABLE_FOLDER))
    gone = [k for k in known if k not in present and not k.startswith(hidden)]
    if gone:
        with store.transaction() as con:
            g = store.bump(con)
            for k in gone:
                item_rows.remove(con, known[k]["id"], g)
                itemdata.forget(con, known[k]["id"], g)
            item_rows.clear_problems(con, [name_value(k) for k in gone])
            store.log("info", f"removed {len(gone)} deleted files", con)
        report.removed = len(gone)


def _plan(store: Store, entries: list[Entry], problems: list[tuple[str, str]], known: dict, failed: dict,
          stale: set[int], retry_failed: bool, report: IndexReport) -> list[_Work]:
    """The files to (re-)embed: new, changed, or embedded under the index's old settings.
    Unchanged files are counted (their captions/tags updated in place when those changed);
    files that cannot be read, are not regular files, or failed before unchanged are skipped."""
    todo: list[_Work] = []
    meta_updates = []
    with_text = textindex.ids_with_text(store.con)
    report.skipped.extend(problems)
    for e in entries:
        try:
            st = e.path.stat()
        except OSError as err:
            report.skipped.append((e.key, f"unreadable ({err.strerror or err})"))
            continue
        if not stat.S_ISREG(st.st_mode):  # FIFO/device/socket: never opened
            report.skipped.append((e.key, f"not a regular file ({file_kind(st.st_mode)})"))
            continue
        row = known.get(e.key)
        redo = row is not None and row["id"] in stale  # embedded under the index's old settings
        if not redo and row is not None and row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns:
            report.unchanged += 1
            if ((json.loads(row["captions"]), json.loads(row["tags"])) != (e.captions, e.tags)
                    or row["id"] not in with_text):  # (an index built before the text index)
                meta_updates.append((e, row["id"]))
            continue
        bad = failed.get(e.key)
        if (bad is not None and not retry_failed and not bad["reason"].startswith(UNREADABLE)
                and bad["size"] == st.st_size
                and bad["mtime_ns"] == st.st_mtime_ns and bad["mode"] == st.st_mode):
            report.skipped.append((e.key, bad["reason"]))
            continue
        todo.append(_Work(e, st.st_size, st.st_mtime_ns, row, mode=st.st_mode, stale=redo))
    if meta_updates:
        cols = [textindex.item_columns(shown_name(e.key), e.captions, e.tags, read_tags(e.path))
                for e, _ in meta_updates]
        with store.transaction() as con:
            for (e, item_id), c in zip(meta_updates, cols):
                item_rows.set_labels(con, name_value(e.key), json.dumps(e.captions), json.dumps(e.tags),
                                 json.dumps(e.meta))
                textindex.put(con, item_id, c)
    return todo


def _decode(w: _Work, sr: int, max_seconds: float | None) -> _Work:
    """Hash, decode and describe one planned file (on a worker thread); any failure is recorded
    in ``w.error``, never raised. A file whose content is unchanged is not decoded."""
    try:
        try:
            w.sha1, st = _sha1(w.entry.path)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM):
                w.unreadable = True
                w.error = f"{UNREADABLE} ({os.strerror(err.errno)}); kept and retried on the next run"
                return w
            raise
        w.dev_ino = (st.st_dev, st.st_ino)
        if not w.stale and w.row is not None and w.row["sha1"] == w.sha1:
            w.same_content = True
            return w
        w.wave, w.info = load_wave(w.entry.path, sr, max_seconds, max_channels=MAX_CHANNELS,
                                   seconds_limit=FILE_SECONDS)
        if w.wave.size == 0:
            raise ValueError("no audio samples")
        e = w.entry
        w.data.text = textindex.item_columns(shown_name(e.key), e.captions, e.tags, read_tags(e.path))
        w.data.peaks = peaks.compute(w.wave)
    except Exception as err:  # noqa: BLE001 - any bad file is reported, never fatal
        w.error = _reason(err)
    return w


def _embed_and_write(store: Store, embedder: Any, todo: list[_Work], report: IndexReport, *,
                     max_seconds: float | None, batch_size: int, workers: int, progress: bool,
                     keep_frames: bool, windows: tuple[float, float]) -> None:
    """Decode on ``workers`` threads, embed on this one, commit one transaction per batch."""
    sr = int(embedder.sample_rate)
    bar = _progress(len(todo), progress)
    batch: list[_Work] = []
    with ThreadPoolExecutor(max_workers=workers) as ex:
        for w in _ordered(ex, functools.partial(_decode, sr=sr, max_seconds=max_seconds), todo,
                          window=max(2 * batch_size, 4 * workers)):
            batch.append(w)
            if len(batch) >= batch_size:
                _commit(store, embedder, batch, report, keep_frames, windows)
                bar.update(len(batch))
                batch = []
        if batch:
            _commit(store, embedder, batch, report, keep_frames, windows)
            bar.update(len(batch))
    bar.close()


def _finish(index_dir: Path, store: Store, report: IndexReport, t0: float) -> None:
    """Bring the vector backend up to date with the store, total and log the run, close the store."""
    open_backend(index_dir, store, read_manifest(index_dir) or {}, save=True)
    report.total = store.count()
    report.seconds = time.time() - t0
    store.log("info", report.summary())
    for key, reason in report.skipped:
        store.log("warning", f"skipped {key}: {reason}")
    for key, kept in report.clamped:
        store.log("warning", f"{key}: only the first {kept:.1f} s indexed (longer than the decoding limit)")
    for key, kept in report.truncated:
        store.log("warning", f"{key}: {_TRUNCATED.format(kept)}")
    store.close()


def _print_report(report: IndexReport) -> None:
    print(report.summary(), file=sys.stderr)
    for key, kept in report.clamped:
        print(f"  {printable(key)}: only the first {kept:.1f} s indexed (longer than the decoding limit)",
              file=sys.stderr)
    for key, kept in report.truncated:
        print(f"  {printable(key)}: {_TRUNCATED.format(kept)}", file=sys.stderr)
    if report.skipped:
        print(f"Skipped {len(report.skipped)} file(s):", file=sys.stderr)
        for key, reason in report.skipped:
            print(f"  {printable(key)}: {printable(reason)}", file=sys.stderr)


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None)
    return str(reason) if reason else (str(err) or type(err).__name__)


def _progress(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="clip", desc="indexing", disable=not enabled, dynamic_ncols=True)


def _embed(embedder: Any, waves: list[np.ndarray]) -> tuple[list, list, list[str | None]]:
    """Embed a batch; on failure retry one by one so only the bad clip is skipped."""
    dim = int(embedder.dim)

    def ok(emb: np.ndarray, n: int) -> bool:
        return emb.shape == (n, dim) and bool(np.isfinite(emb).all())

    try:
        emb, frames = embedder.embed_audio(waves)
        emb = np.asarray(emb, np.float32)
        if ok(emb, len(waves)) and len(frames) == len(waves):
            return list(emb), list(frames), [None] * len(waves)
    except Exception:  # noqa: BLE001
        if len(waves) == 1:
            raise
    embs, frs, errs = [], [], []
    for w in waves:
        try:
            e, f = embedder.embed_audio([w])
            e = np.asarray(e, np.float32)
            if not ok(e, 1):
                raise ValueError(f"embedder returned shape {e.shape} or non-finite values")
            embs.append(e[0]); frs.append(f[0]); errs.append(None)
        except Exception as err:  # noqa: BLE001
            embs.append(None); frs.append(None); errs.append(f"embedding failed ({_reason(err)})")
    return embs, frs, errs


def _commit(store: Store, embedder: Any, batch: list[_Work], report: IndexReport, keep_frames: bool = True,
            windows: tuple[float, float] = (0.0, 0.0)) -> None:
    need = [w for w in batch if w.error is None and not w.same_content]
    if need:
        embs, frames, errs = _embed(embedder, [w.wave for w in need])
        for w, e, f, err in zip(need, embs, frames, errs):
            if err is None and windows[0] > 0:
                try:
                    w.data.spans, w.data.window_emb = moments.embed_windows(
                        embedder, w.wave, int(embedder.sample_rate), *windows, batch_size=max(1, len(batch)),
                        frames=w.data.window_frames if keep_frames else None)
                except Exception:  # noqa: BLE001 - the file stays searchable as a whole
                    w.data.spans, w.data.window_emb = [], None
            w.error, w.wave = err, None
            w.info = None if err else {**(w.info or {}), "emb": e, "frames": f}
    good = [w for w in need if w.error is None]
    report.clamped.extend((w.entry.key, w.info["clamped"]) for w in good if "clamped" in w.info)
    report.truncated.extend((w.entry.key, w.info["truncated"]) for w in good if "truncated" in w.info)
    if keep_frames and good:
        refs = store.frames.append([np.asarray(w.info["frames"]) for w in good])
        for w in good:
            if w.data.window_frames and len(w.data.window_frames) == len(w.data.spans):
                w.data.window_refs = store.frames.append(w.data.window_frames)
            w.data.window_frames = []
    else:
        refs = [(None, None, None, None)] * len(good)
    with store.transaction() as con:
        g = store.bump(con)
        for w, ref in zip(good, refs):
            e, info = w.entry, w.info
            vals = (name_value(str(e.path)), name_value(str(e.path.resolve())), info["duration"], info["sample_rate"], info["channels"],
                    w.size, w.mtime_ns, w.sha1, json.dumps(e.captions), json.dumps(e.tags), json.dumps(e.meta),
                    e.source_id, np.asarray(info["emb"], np.float32).tobytes(), *ref, g, *(w.dev_ino or (None, None)))
            # (vals: in the order of item_rows.FILE_COLUMNS)
            item_rows.begin_item(con)  # one file that cannot be stored is skipped, not the batch
            try:
                if w.row is not None:
                    item_rows.update_file(con, w.row["id"], vals)
                    item_id = w.row["id"]
                else:
                    item_id = item_rows.insert_file(con, name_value(e.key), vals)
                itemdata.attach(con, item_id, g, w.data)
                item_rows.clear_problem(con, name_value(e.key))
            except (sqlite3.Error, ValueError, TypeError, OverflowError) as err:
                if is_disk_full(err):
                    raise
                item_rows.undo_item(con)
                w.error = f"could not be stored in the index ({_reason(err)})"
                continue
            item_rows.end_item(con)
            if w.row is not None:
                report.updated += 1
            else:
                report.added += 1
        for w in batch:
            if w.same_content:
                item_rows.touch_file(con, w.row["id"], w.size, w.mtime_ns, *(w.dev_ino or (None, None)))
                item_rows.clear_problem(con, name_value(w.entry.key))  # readable again
                report.unchanged += 1
            elif w.error is not None:
                if w.row is not None and not w.unreadable:  # an indexed file went bad: drop its stale entry
                    item_rows.remove(con, w.row["id"], g)
                    itemdata.forget(con, w.row["id"], g)
                item_rows.record_problem(con, name_value(w.entry.key), w.size, w.mtime_ns, w.error, time.time(),
                                         w.mode)
                report.skipped.append((w.entry.key, w.error))

