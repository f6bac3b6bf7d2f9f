"""The index manifest (``manifest.json``), the single-writer lock, and backend synchronisation.

The SQLite store is the source of truth; the backend (FAISS file or Milvus collection) is a
cache of it, stamped with the store *generation* it reflects in ``backend_state.json``.
When stale it is brought up to date incrementally (tombstones + rows changed since) or
rebuilt, then saved atomically (METHODS.md §8). The FAISS files' CRC-32s are stamped in the
state too and checked on open: a damaged file is rebuilt from SQLite, never searched.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..fileio import atomic_write_text
from .backends.base import VectorBackend, build_backend, fold_items
from .integrity import IndexDamagedError, file_crc32, is_disk_full, read_json, repair_hint
from .store import Store

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BACKEND_STATE = "backend_state.json"


class IndexMismatchError(ConfigError):
    """The index was built with another embedder (fingerprint or dim differ)."""


def write_json_atomic(path: Path, data: dict) -> None:
    """``data`` as indented, key-sorted JSON, written atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True))


def read_manifest(index_dir: str | Path) -> dict | None:
    """The manifest of ``index_dir`` (None if there is none).

    Raises:
        IndexDamagedError: the file is empty, truncated, not JSON or not an index manifest.
    """
    p = Path(index_dir) / MANIFEST
    if not p.is_file():
        return None
    repair = repair_hint(index_dir)
    man = read_json(p, "index manifest", repair)
    if not isinstance(man, dict) or not {"fingerprint", "dim", "backend"} <= set(man):
        raise IndexDamagedError(p, "not an index manifest (fingerprint/dim/backend missing)", repair)
    return man


def _read_state(path: Path) -> dict:
    """backend_state.json, or {} when missing or damaged (it only stamps a cache of SQLite)."""
    if not path.is_file():
        return {}
    try:
        state = read_json(path, "backend state", "")
    except IndexDamagedError:
        return {}
    return state if isinstance(state, dict) else {}


def _checksums_ok(index_dir: Path, state: dict) -> bool:
    """True when the backend files match the CRC-32s stamped at save time (or none were)."""
    sums = state.get("checksums")
    if not isinstance(sums, dict):
        return True  # written before checksums were recorded
    for name, crc in sums.items():
        p = index_dir / name
        if "/" in name or not p.is_file() or file_crc32(p) != crc:
            return False
    return True


def outdated_encoder(manifest: dict, embedder: Any) -> str | None:
    """Why the index holds vectors of the *same* model computed by an earlier version of its
    audio encoder (``AudioEncoder.previous_configs``), so it must be rebuilt; None otherwise."""
    enc = getattr(embedder, "audio_encoder", None)
    previous = getattr(enc, "previous_configs", None)
    stored = manifest.get("fingerprint")
    if not callable(previous) or stored is None or stored == embedder.fingerprint():
        return None
    for cfg in previous():
        try:
            fp = embedder.fingerprint(cfg)
        except TypeError:  # an embedder without versioned fingerprints
            return None
        if fp == stored:
            from soundseek.encoders.base import computation_change

            return (f"it was built by an earlier computation of the {cfg.get('class', 'audio')} encoder "
                    f"(version {cfg.get('computation', 1)}, now {enc.computation}: "
                    f"{computation_change(enc.computation)})")
    return None


def check_compatible(manifest: dict, embedder: Any, index_dir: Path) -> None:
    fp = embedder.fingerprint()
    why = outdated_encoder(manifest, embedder)
    if why:
        raise IndexMismatchError(f"Index {index_dir} must be rebuilt: {why}. Run `soundseek index` on it "
                                 "again (it rebuilds such an index by itself).")
    if manifest.get("fingerprint") != fp or int(manifest.get("dim", -1)) != int(embedder.dim):
        raise IndexMismatchError(
            f"Index {index_dir} was built with embedder {manifest.get('fingerprint')!r} "
            f"(dim {manifest.get('dim')}), but the current embedder is {fp!r} (dim {embedder.dim}). "
            "Rebuild it (`soundseek index ... --rebuild`, build_index(rebuild=True)) or load the matching model.")


class IndexLock:
    """Exclusive ``flock`` on ``index_dir/.lock``: one writer per index at a time."""

    def __init__(self, index_dir: Path) -> None:
        self.path = Path(index_dir) / ".lock"
        self.f = None

    def __enter__(self) -> "IndexLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.f = open(self.path, "w")
        except IsADirectoryError:
            raise RuntimeError(f"{self.path} is a directory, not the index's lock file; remove it "
                               f"(rmdir '{self.path}') and run the command again") from None
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.close()
            raise RuntimeError(f"Another process is writing the index {self.path.parent}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.f is not None
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def backend_options(manifest: dict, index_dir: Path) -> dict:
    opts = dict(manifest.get("backend_options") or {})
    if manifest["backend"] == "milvus":
        uri = str(opts.get("uri") or "milvus.db")
        if "://" not in uri and not os.path.isabs(uri):
            uri = str(Path(index_dir) / uri)
        opts["uri"] = uri
    return opts


def probe_server(index_dir: str | Path, backend: str | None = None, uri: str | None = None) -> None:
    """Fail fast (one line, bounded time) when the Milvus server URI -- given, else the index's
    own -- is wrong or its server is down, before a model is loaded or a clip embedded.
    ``backend``: the backend the caller asks for (None: the index's own)."""
    try:
        man = read_manifest(index_dir) if uri is None else None
    except (OSError, ValueError):  # a damaged manifest is the work's to report (or --rebuild's to replace)
        man = None
    if uri is None and man is not None and man.get("backend") == "milvus" and backend in (None, "milvus"):
        uri = backend_options(man, Path(index_dir))["uri"]
    if uri is not None and "://" in str(uri) and backend in (None, "milvus"):  # a Lite file is opened by the work
        from .backends.milvus_backend import probe

        probe(uri)


def _backend_path(index_dir: Path, manifest: dict) -> Path:
    return Path(index_dir) / "vectors.faiss"


class BackendBehind(RuntimeError):
    """A shared vector store (a Milvus collection) lags the index and this process may not write it."""


def open_backend(index_dir: str | Path, store: Store, manifest: dict, save: bool = True,
                 overrides: dict | None = None, write_shared: bool = True) -> VectorBackend:
    """Load the backend and bring it up to the store's generation (saved if ``save``).

    A FAISS backend is synced in this process's memory. A Milvus collection is shared with
    every process that opens the index; with ``write_shared=False`` (a searcher picking up an
    indexer's changes while the indexer still writes) a collection that lags the index raises
    :class:`BackendBehind` instead of being written, so that only the indexer writes it."""
    index_dir = Path(index_dir)
    name = manifest["backend"]
    opts = {**backend_options(manifest, index_dir), **(overrides or {})}
    dim = int(manifest["dim"]) + 1  # folded bias column (METHODS.md §5)
    state = _read_state(index_dir / BACKEND_STATE)
    gen, count = store.generation, store.vector_count()
    same = state.get("backend") == name and state.get("options") == (manifest.get("backend_options") or {})
    since = int(state.get("generation", -1)) if same and isinstance(state.get("generation"), int) else -1
    if since >= 0 and name == "faiss" and not _checksums_ok(index_dir, state):
        since = -1  # damaged vector file: rebuilt from SQLite below, never searched
    backend: VectorBackend | None = None
    if since >= 0:
        try:
            if name == "faiss":
                from .backends.faiss_backend import FaissBackend
                backend = FaissBackend.load(_backend_path(index_dir, manifest), **opts)
            else:
                backend = build_backend(name, dim, **opts)
        except (FileNotFoundError, ValueError, RuntimeError):
            backend, since = None, -1
    if backend is not None and since == gen and len(backend) == count:
        return backend
    if name == "milvus" and not write_shared:
        raise BackendBehind(f"the Milvus collection of {index_dir} is at generation {since}, the index at {gen}")
    if backend is not None and getattr(backend, "index_type", "") == "hnsw":
        backend, since = None, -1  # faiss HNSW cannot delete: rebuild
    if backend is None:
        since = -1
        if name == "milvus":
            opts["drop_existing"] = True
        if name == "faiss":
            opts.setdefault("expected_size", count)
        backend = build_backend(name, dim, **opts)
    dels = store.deleted_since(since) if since >= 0 else []
    if len(dels):
        backend.remove(dels)
    for ids, emb, bias in store.iter_vectors(since_gen=since, dim=int(manifest["dim"])):
        backend.add(ids, fold_items(emb, bias))
    if len(backend) != count:  # should not happen; fall back to a full rebuild
        return _full_rebuild(index_dir, store, manifest, save, opts)
    if save:
        _save(index_dir, backend, manifest, gen, count)
    return backend


def _full_rebuild(index_dir: Path, store: Store, manifest: dict, save: bool, opts: dict) -> VectorBackend:
    name = manifest["backend"]
    if name == "milvus":
        opts = {**opts, "drop_existing": True}
    backend = build_backend(name, int(manifest["dim"]) + 1, **opts)
    for ids, emb, bias in store.iter_vectors(dim=int(manifest["dim"])):
        backend.add(ids, fold_items(emb, bias))
    if save:
        _save(index_dir, backend, manifest, store.generation, store.vector_count())
    return backend


def _save(index_dir: Path, backend: VectorBackend, manifest: dict, gen: int, count: int) -> None:
    state = {"backend": manifest["backend"], "generation": gen, "options": manifest.get("backend_options") or {},
             "count": count, "saved": time.time()}
    if manifest["backend"] == "faiss":
        path = _backend_path(index_dir, manifest)
        try:
            backend.save(path)
        except RuntimeError as e:  # FAISS' writer: an OSError to callers (read-only / full disk)
            if is_disk_full(e):
                raise OSError(errno.ENOSPC, f"No space left on device writing {path}") from None
            raise
        state["checksums"] = {n: file_crc32(index_dir / n) for n in (path.name, path.name + ".meta.json")}
    else:
        backend.save(None)
    write_json_atomic(index_dir / BACKEND_STATE, state)
