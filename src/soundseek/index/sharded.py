"""Sharded indexing across the processes of a torch.distributed group (``torchrun ...
soundseek index``).

:func:`run_sharded` maps a function over a work list cut into fixed shards of ``shard_size``
items (independent of the world size): rank r computes shards r, r+N, ... that are not on disk
yet and writes each one atomically; rank 0 waits at a barrier and merges them in item order. A
rerun after a crashed rank redoes only the missing shards, with any number of processes.

:func:`build_index_sharded`: the ranks embed their shares of the files the index does not hold
yet with :func:`run_sharded`; rank 0 then runs the ordinary :func:`build_index` with an embedder
that answers from the precomputed vectors (looked up by the decoded waveform), so the index is
written by one process exactly as a single-process run writes it.
"""
from __future__ import annotations

import hashlib
import logging
import math
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from soundseek import distributed as dist
from soundseek.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

__all__ = ["run_sharded", "build_index_sharded", "PrecomputedEmbedder"]


# -- serialisation of shard results: tensors / numpy / plain values (weights_only loading) --
def _encode(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(x))}
    if isinstance(x, dict):
        return {k: _encode(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_encode(v) for v in x]
    return x


def _decode(x: Any) -> Any:
    if isinstance(x, dict):
        if set(x) == {"__ndarray__"}:
            return x["__ndarray__"].numpy()
        return {k: _decode(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_decode(v) for v in x]
    return x


def _load_shard(path: Path, n: int) -> list | None:
    """The results in a shard file, or None when it is missing, unreadable or incomplete."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a damaged shard is recomputed
        return None
    if not isinstance(obj, dict) or obj.get("n") != n or len(obj.get("results", [])) != n:
        return None
    return _decode(obj["results"])


def run_sharded(items: Sequence, fn: Callable[[list], list], work_dir: str | Path, key: str,
                shard_size: int = 256, all_ranks: bool = False, cleanup: bool = True) -> list | None:
    """Map ``fn`` over ``items`` shard by shard across the ranks; rank 0 merges.

    Args:
        items: the work list, identical (same order) on every rank.
        fn: items of one shard -> one result per item (tensors, numpy arrays, plain values).
        work_dir: where shard files live (``work_dir/<digest>/shard-KKKKK-of-NNNNN.pt``).
        key: identifies the items and the computation (e.g. model fingerprint + file list
            hash); shards of another key are never reused.
        shard_size: items per shard (what a crash can lose at most).
        all_ranks: return the merged list on every rank (else only on rank 0, None elsewhere).
        cleanup: rank 0 deletes the shard files after merging.
    Returns:
        ``[fn(...) results in item order]`` on rank 0 (and every rank with ``all_ranks``).
    Raises:
        RuntimeError (rank 0) if shards are missing after the barrier.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    n = len(items)
    n_shards = max(1, math.ceil(n / shard_size))
    digest = hashlib.sha1(f"{key}|{n}|{shard_size}".encode()).hexdigest()[:16]
    folder = Path(work_dir) / f"shards-{digest}"
    folder.mkdir(parents=True, exist_ok=True)

    def path(k: int) -> Path:
        return folder / f"shard-{k:05d}-of-{n_shards:05d}.pt"

    def size(k: int) -> int:
        return len(range(k * shard_size, min(n, (k + 1) * shard_size)))

    for k in range(dist.rank(), n_shards, dist.world_size()):
        if _load_shard(path(k), size(k)) is not None:
            continue  # finished by an earlier (possibly crashed) run
        chunk = list(items[k * shard_size: (k + 1) * shard_size])
        results = list(fn(chunk))
        if len(results) != len(chunk):
            raise ValueError(f"fn returned {len(results)} results for {len(chunk)} items")
        payload = {"n": len(chunk), "results": _encode(results)}
        atomic_write_bytes(path(k), lambda f: torch.save(payload, f))
    dist.barrier()
    merged = None
    if dist.is_main() or all_ranks:
        parts = [_load_shard(path(k), size(k)) for k in range(n_shards)]
        missing = [k for k, p in enumerate(parts) if p is None]
        if missing:
            raise RuntimeError(f"{len(missing)} shard(s) missing in {folder}: {missing[:10]}; rerun to compute them")
        merged = [r for p in parts for r in p]
    dist.barrier()
    if cleanup and dist.is_main():
        shutil.rmtree(folder, ignore_errors=True)
    return merged


# -- index ------------------------------------------------------------------------------------
def _wave_key(wave: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(wave, dtype=np.float32).tobytes()).hexdigest()


class PrecomputedEmbedder:
    """An embedder that answers ``embed_audio`` from precomputed results (by waveform hash)
    and falls back to the wrapped embedder for anything else (text, re-ranking, misses)."""

    def __init__(self, inner, table: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.inner, self.table = inner, table
        self.dim, self.sample_rate = inner.dim, inner.sample_rate
        self.hits = 0

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def embed_audio(self, waves: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        keys = [_wave_key(w) for w in waves]
        if all(k in self.table for k in keys):
            self.hits += len(keys)
            return np.stack([self.table[k][0] for k in keys]), [self.table[k][1] for k in keys]
        return self.inner.embed_audio(waves)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_text(texts)

    def rerank(self, text: str, frames: list[np.ndarray]):
        return self.inner.rerank(text, frames)


def build_index_sharded(source: str | Path, embedder, index_dir: str | Path, write: Callable[..., Any],
                        batch_size: int = 16, max_seconds: float | None = None, format: str = "auto", **build_kw):
    """Every rank embeds its share of the files that the index does not hold yet; rank 0 then
    calls ``write`` (the single-process indexer, with ``build_index``'s arguments) with an
    embedder that answers from those results. Reached through ``build_index(..., sharded=True)``.
    Returns rank 0's :class:`IndexReport` (None on other ranks)."""
    from ..audio.io import load_wave
    from .source import enumerate_source
    from .store import Store

    index_dir = Path(index_dir)
    _, entries, _ = enumerate_source(source, format)
    known = {}
    if dist.is_main() and (index_dir / "index.sqlite").is_file() and not build_kw.get("rebuild"):
        store = Store(index_dir)
        known = {k: (r["size"], r["mtime_ns"]) for k, r in store.known().items()}
        store.close()
    known = dist.broadcast_object(known)
    todo = []
    for e in entries:
        try:
            st = e.path.stat()
        except OSError:
            continue  # build_index reports it
        if known.get(e.key) != (st.st_size, st.st_mtime_ns):
            todo.append((e.key, str(e.path), st.st_size, st.st_mtime_ns))
    sr = int(embedder.sample_rate)

    def embed(chunk: list) -> list:
        out, waves, where = [None] * len(chunk), [], []
        for i, (_, p, _, _) in enumerate(chunk):
            try:
                w, _ = load_wave(p, sr, max_seconds)
            except Exception:  # noqa: BLE001 - build_index re-decodes and reports the file
                continue
            if w.size:
                waves.append(w)
                where.append(i)
        for s in range(0, len(waves), batch_size):
            emb, frames = embedder.embed_audio(waves[s: s + batch_size])
            for j, (e, f) in enumerate(zip(np.asarray(emb, np.float32), frames)):
                out[where[s + j]] = {"wave": _wave_key(waves[s + j]), "emb": e, "frames": np.asarray(f)}
        return out

    key = hashlib.sha1(repr((embedder.fingerprint(), max_seconds, todo)).encode()).hexdigest()
    results = run_sharded(todo, embed, index_dir / ".dist", key=key, shard_size=max(batch_size, 64))
    report = None
    if dist.is_main():
        table = {r["wave"]: (r["emb"], r["frames"]) for r in results if r is not None}
        wrapped = PrecomputedEmbedder(embedder, table)
        report = write(source, wrapped, index_dir, batch_size=batch_size, max_seconds=max_seconds,
                       format=format, **build_kw)
        log.info("index: %d of %d embeddings computed by %d ranks", wrapped.hits, len(todo), dist.world_size())
    dist.barrier()
    return report
