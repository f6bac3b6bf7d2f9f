"""Sharded work across torchrun ranks: feature extraction and indexing (issue 5).

Generic layer (:func:`run_sharded`): a list of items is cut into fixed shards of
``shard_size`` items (independent of the world size); rank r computes shards r, r+N, ...
that are not on disk yet and writes each one atomically; rank 0 waits at a barrier and
merges them in item order. A rerun after a crashed rank redoes only the missing shards,
with any number of processes.

Feature cache (:func:`extract_features`): the cache already commits its own atomic,
uuid-named shards and indexes them per item, so each rank simply encodes its share of the
clips / captions; afterwards every rank opens the whole (now complete) cache. Index
(:func:`build_index_distributed`): ranks embed their shares of the pending files with
:func:`run_sharded`; rank 0 then runs the ordinary ``build_index`` with an embedder that
returns the precomputed vectors (looked up by the decoded waveform), so the index is
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
from soundseek.device import autocast, module_device
from soundseek.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

__all__ = ["shard_range", "run_sharded", "extract_features", "cache_features_sharded",
           "build_index_distributed", "PrecomputedEmbedder"]


def shard_range(n: int, rank: int | None = None, world: int | None = None) -> slice:
    """Contiguous slice of ``n`` items owned by ``rank`` of ``world`` (np.array_split sizes)."""
    rank = dist.rank() if rank is None else rank
    world = dist.world_size() if world is None else world
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside 0..{world - 1}")
    q, r = divmod(n, world)
    start = rank * q + min(rank, r)
    return slice(start, start + q + (1 if rank < r else 0))


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


# -- feature cache --------------------------------------------------------------------------
def cache_features_sharded(cache, clips: Sequence, captions: Sequence[str], audio_encoder, text_encoder,
                           batch_size: int = 16, text_batch_size: int = 64, max_seconds: float | None = None,
                           progress: bool = True, precision: str = "fp32") -> dict[str, int]:
    """Each rank encodes its contiguous share of ``clips`` and of the distinct ``captions`` into
    ``cache`` (a :class:`soundseek.encoders.cache.FeatureCache`), then all ranks meet at a
    barrier. Items already cached are skipped (a rerun after a crash redoes only what is
    missing). Returns this rank's {"audio": encoded clips, "text": encoded captions}."""
    clips = list(clips)
    unique = list(dict.fromkeys(captions))
    mine_a = clips[shard_range(len(clips))]
    mine_t = unique[shard_range(len(unique))]
    show = progress and dist.is_main()
    with torch.inference_mode(), autocast(module_device(audio_encoder), precision):
        a = cache.audio_features(mine_a, audio_encoder, batch_size=batch_size, max_seconds=max_seconds,
                                 progress=show) if mine_a else None
        t = cache.text_features(mine_t, text_encoder, batch_size=text_batch_size, progress=show) if mine_t else None
    dist.barrier()
    return {"audio": int(getattr(a, "computed", 0)), "text": int(getattr(t, "computed", 0))}


def extract_features(cfg, corpus=None, progress: bool = True) -> dict[str, int]:
    """``torchrun ... soundseek features CONFIG``: the corpus of ``cfg`` encoded by all ranks.

    Rank 0 loads (and for the synthetic corpus, writes) the corpus first, the others then
    read it; afterwards ``soundseek.train.data.prepare(cfg)`` on any rank finds every item
    cached."""
    from soundseek.encoders.cache import FeatureCache
    from soundseek.data.training import load_training_corpus
    from soundseek.device import select_device
    from soundseek.models.factory import build_towers

    if corpus is None:
        if not dist.is_main():
            dist.barrier()
        corpus = load_training_corpus(cfg)
        if dist.is_main():
            dist.barrier()
    audio_enc, text_enc = build_towers(cfg)
    device = select_device(cfg.train.device)
    audio_enc.to(device), text_enc.to(device)
    captions, _ = corpus.pairs()
    cache = FeatureCache(Path(cfg.data.cache_dir) / "features")
    return cache_features_sharded(cache, corpus.clips, captions, audio_enc, text_enc,
                                  batch_size=cfg.encoders.batch_size, max_seconds=cfg.data.max_seconds,
                                  progress=progress, precision=cfg.encoders.precision)


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


def build_index_distributed(source: str | Path, embedder, index_dir: str | Path, batch_size: int = 16,
                            max_seconds: float | None = None, format: str = "auto", **build_kw):
    """``torchrun ... soundseek index``: every rank embeds its share of the files that the
    index does not hold yet, rank 0 writes the index with ``build_index`` from those results.
    Returns rank 0's :class:`IndexReport` (None on other ranks)."""
    from soundseek.index.indexer import build_index, load_wave
    from soundseek.index.source import enumerate_source
    from soundseek.index.store import Store

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
        report = build_index(source, wrapped, index_dir, batch_size=batch_size, max_seconds=max_seconds,
                             format=format, **build_kw)
        log.info("index: %d of %d embeddings computed by %d ranks", wrapped.hits, len(todo), dist.world_size())
    dist.barrier()
    return report
