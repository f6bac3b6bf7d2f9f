"""Frozen-encoder feature cache on disk (METHODS §3, "Frozen-encoder mode").

Layout (one directory per encoder configuration)::

    root/
      audio/<config-hash>/config.json             # encoder.config() + options, for humans
      audio/<config-hash>/shard-<uuid>.npy        # (sum_T, D) frames of the shard's clips
      audio/<config-hash>/shard-<uuid>.json       # {key: [offset, length]}, failed {key: reason}
      text/<config-hash>/shard-<uuid>.{npy,sent.npy,json}   # tokens (sum_L, D), sentences (n, D)

* Config hash: sha1 of ``encoder.config()`` plus the cache options (``max_seconds``, dtype,
  format version) — a changed encoder gets a fresh directory.
* Entry key: sha1 of (clip id, file size, mtime_ns) for audio, of the caption for text — a
  changed file is recomputed, an unchanged one is read back.
* Crash safety: results are written in shards of ``shard_size`` items; each ``.npy`` is written
  to a temporary name and ``os.replace``-d, the ``.json`` last, so a shard exists only when
  complete. A killed run keeps every finished shard; an exception flushes what was computed.
* Decode errors (:class:`soundseek.audio.io.AudioDecodeError`) are recorded per clip
  (``store.failed``) and never stop the run; their records are kept, so an unchanged corrupt
  file is not retried.
Stores memory-map the shards (``np.load(mmap_mode="r")``); features are float16 by default.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from soundseek.audio.io import AudioDecodeError, batch_waves, load_audio
from soundseek import distributed as dist
from soundseek.device import module_device
from soundseek.fileio import atomic_write_bytes
from soundseek.padding import pad_sequences



class Clip(Protocol):
    """What the cache reads of a clip (``soundseek.data.types.Clip`` is one)."""

    id: str
    audio: Path


FORMAT_VERSION = 1
DTYPES = ("float16", "float32")


def _sha1(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write_bytes(path, lambda f: np.save(f, arr))


def _atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, lambda f: f.write(json.dumps(obj).encode("utf-8")))


class _ShardDir:
    """All committed shards of one configuration: key -> (shard, offset, length), failures."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, tuple[str, int, int, int]] = {}  # key -> (shard, off, len, row)
        self.failed: dict[str, str] = {}
        self._maps: dict[tuple[str, str], np.ndarray] = {}
        if path.is_dir():
            for j in sorted(path.glob("shard-*.json")):
                try:
                    meta = json.loads(j.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue  # unreadable index: its shard is recomputed
                name = j.name[: -len(".json")]
                for row, (k, (off, n)) in enumerate(meta.get("entries", {}).items()):
                    self.entries.setdefault(k, (name, int(off), int(n), row))
                for k, reason in meta.get("failed", {}).items():
                    self.failed.setdefault(k, reason)

    def array(self, shard: str, kind: str) -> np.ndarray:
        if (shard, kind) not in self._maps:
            self._maps[(shard, kind)] = np.load(self.path / f"{shard}.{kind}.npy", mmap_mode="r")
        return self._maps[(shard, kind)]

    def write(self, keys: list[str], seqs: list[np.ndarray], extra: dict[str, np.ndarray],
              failed: dict[str, str], dtype: str) -> None:
        """Commit one shard: variable-length ``seqs`` concatenated, ``extra`` row arrays, failures."""
        if not keys and not failed:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}"
        entries, off = {}, 0
        for k, s in zip(keys, seqs):
            entries[k] = [off, int(s.shape[0])]
            off += int(s.shape[0])
        dim = seqs[0].shape[1] if seqs else 0
        data = np.concatenate(seqs, 0) if seqs else np.zeros((0, dim))
        _atomic_save_npy(self.path / f"{name}.frames.npy", data.astype(dtype))
        for kind, arr in extra.items():
            _atomic_save_npy(self.path / f"{name}.{kind}.npy", arr.astype(dtype))
        _atomic_write_json(self.path / f"{name}.json", {"entries": entries, "failed": failed, "dim": int(dim)})
        for row, (k, (o, n)) in enumerate(entries.items()):
            self.entries.setdefault(k, (name, o, n, row))
        for k, r in failed.items():
            self.failed.setdefault(k, r)


def _pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """(T_i, D) arrays -> (B, Tmax, D) float32, (B, Tmax) bool."""
    return pad_sequences(seqs)


class AudioStore:
    """Cached frame features of the clips that decoded, in input order.

    Attributes: ``ids`` (clip ids, len = ``len(store)``), ``failed`` ({clip id: reason}),
    ``computed`` (items encoded by the call that built the store), ``dim`` (D).
    """

    def __init__(self, shards: _ShardDir, ids: list[str], keys: list[str], failed: dict[str, str],
                 computed: int) -> None:
        self._shards, self.ids, self._keys, self.failed, self.computed = shards, ids, keys, failed, computed
        self._pos = {c: i for i, c in enumerate(ids)}
        self.lengths = np.array([shards.entries[k][2] for k in keys], dtype=np.int64)
        self.dim = int(shards.array(shards.entries[keys[0]][0], "frames").shape[1]) if keys else 0

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, clip_id: str) -> int:
        """Position of ``clip_id`` in the store (KeyError if it failed or was not requested)."""
        if clip_id not in self._pos:
            why = f" (failed: {self.failed[clip_id]})" if clip_id in self.failed else ""
            raise KeyError(f"Clip {clip_id!r} is not in the store{why}")
        return self._pos[clip_id]

    def get(self, i: int) -> np.ndarray:
        """Frames of item i: (T_i, D) memory-mapped array (stored dtype)."""
        shard, off, n, _ = self._shards.entries[self._keys[i]]
        return self._shards.array(shard, "frames")[off: off + n]

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> frames (B, Tmax, D) float32, mask (B, Tmax) bool."""
        return _pad([self.get(int(i)) for i in indices])


class TextStore:
    """Cached token features and sentence vectors, one item per input caption (in order)."""

    def __init__(self, shards: _ShardDir, keys: list[str], computed: int) -> None:
        self._shards, self._keys, self.computed = shards, keys, computed
        self.lengths = np.array([shards.entries[k][2] for k in keys], dtype=np.int64)
        self.dim = int(shards.array(shards.entries[keys[0]][0], "frames").shape[1]) if keys else 0

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, i: int) -> np.ndarray:
        """Token states of caption i: (L_i, D)."""
        shard, off, n, _ = self._shards.entries[self._keys[i]]
        return self._shards.array(shard, "frames")[off: off + n]

    def sentence(self, i: int) -> np.ndarray:
        shard, _, _, row = self._shards.entries[self._keys[i]]
        return self._shards.array(shard, "sent")[row]

    def batch(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> tokens (B, Lmax, D) float32, mask (B, Lmax) bool, sentence (B, D) float32."""
        tokens, mask = _pad([self.get(int(i)) for i in indices])
        sent = torch.from_numpy(np.stack([np.asarray(self.sentence(int(i)), dtype=np.float32) for i in indices]))
        return tokens, mask, sent


class _Decode(Dataset):
    def __init__(self, clips: list[Clip], sample_rate: int, max_seconds: float | None) -> None:
        self.clips, self.sr, self.max_seconds = clips, sample_rate, max_seconds

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, j: int):
        try:
            x = load_audio(self.clips[j].audio, self.sr, max_seconds=self.max_seconds)
            if x.size == 0:
                return j, None, "no audio samples"
            return j, x, None
        except AudioDecodeError as e:
            return j, None, e.reason


class FeatureCache:
    """Memory-mapped cache of frozen encoder outputs under ``root``.

    Args:
        root: cache directory (created on first write).
        dtype: ``"float16"`` (default, half the disk) or ``"float32"``.
        shard_size: items per committed shard (what a killed run can lose at most).
    """

    def __init__(self, root: str | Path, dtype: str = "float16", shard_size: int = 256) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"Invalid cache dtype {dtype!r}. Valid: {', '.join(DTYPES)}")
        if shard_size < 1:
            raise ValueError(f"shard_size must be >= 1, got {shard_size}")
        self.root, self.dtype, self.shard_size = Path(root), dtype, int(shard_size)

    def _dir(self, kind: str, encoder, **opts) -> Path:
        cfg = {"encoder": encoder.config(), "dtype": self.dtype, "format": FORMAT_VERSION, **opts}
        path = self.root / kind / _sha1(cfg)[:16]
        if not (path / "config.json").is_file():
            path.mkdir(parents=True, exist_ok=True)
            _atomic_write_json(path / "config.json", cfg)
        return path

    def audio_features(self, clips: Sequence[Clip], encoder, batch_size: int = 8, max_seconds: float | None = None,
                       progress: bool = True, num_workers: int = 0) -> AudioStore:
        """Encode the clips not cached yet and return a store over all of them.

        Args:
            clips: clips to cover (ids must be unique).
            encoder: audio encoder (``sample_rate``, ``config()``, ``forward(wave, mask)``), run in
                eval mode without gradients.
            max_seconds: crop each file to its first ``max_seconds`` (part of the cache key).
            num_workers: DataLoader worker processes for decoding.
        """
        shards = _ShardDir(self._dir("audio", encoder, max_seconds=max_seconds))
        keys, failed, todo = [], {}, []
        for c in clips:
            try:
                st = os.stat(c.audio)
            except OSError as e:
                failed[c.id] = f"file not found or unreadable ({e.strerror})"
                keys.append(None)
                continue
            k = _sha1([c.id, st.st_size, st.st_mtime_ns])
            keys.append(k)
            if k in shards.failed:
                failed[c.id] = shards.failed[k]
            elif k not in shards.entries:
                todo.append((st.st_size, len(todo), c, k))
        todo.sort(key=lambda t: (t[0], t[1]))  # similar sizes per batch: less padding
        computed = self._run_audio(shards, [t[2] for t in todo], [t[3] for t in todo], encoder, batch_size,
                                   max_seconds, progress, num_workers, failed)
        ok = [(c.id, k) for c, k in zip(clips, keys) if k is not None and k in shards.entries]
        return AudioStore(shards, [i for i, _ in ok], [k for _, k in ok], failed, computed)

    def _run_audio(self, shards: _ShardDir, clips: list[Clip], keys: list[str], encoder, batch_size: int,
                   max_seconds, progress: bool, num_workers: int, failed: dict[str, str]) -> int:
        if not clips:
            return 0
        loader = DataLoader(_Decode(clips, encoder.sample_rate, max_seconds), batch_size=batch_size,
                            num_workers=num_workers, collate_fn=list)
        buf_k, buf_x, buf_f, computed = [], [], {}, 0
        dev = module_device(encoder)
        was_training = encoder.training
        encoder.eval()
        bar = tqdm(total=len(clips), desc="audio features", unit="clip", disable=not progress)
        try:
            for items in loader:
                good = [(j, x) for j, x, err in items if err is None]
                for j, _, err in items:
                    if err is not None:
                        buf_f[keys[j]] = err
                        failed[clips[j].id] = err
                if good:
                    wave, mask = batch_waves([x for _, x in good])
                    wave, mask = wave.to(dev), mask.to(dev)
                    with torch.no_grad():
                        frames, fmask = encoder(wave, mask)
                    frames, fmask = frames.float().cpu().numpy(), fmask.cpu().numpy()
                    for b, (j, _) in enumerate(good):
                        buf_k.append(keys[j])
                        buf_x.append(frames[b][fmask[b]])
                    computed += len(good)
                bar.update(len(items))
                if len(buf_k) + len(buf_f) >= self.shard_size:
                    shards.write(buf_k, buf_x, {}, buf_f, self.dtype)
                    buf_k, buf_x, buf_f = [], [], {}
        finally:
            shards.write(buf_k, buf_x, {}, buf_f, self.dtype)  # keep what finished, even on error
            bar.close()
            encoder.train(was_training)
        return computed

    def encode_share(self, clips: Sequence[Clip], captions: Sequence[str], audio_encoder, text_encoder,
                     batch_size: int = 16, text_batch_size: int = 64, max_seconds: float | None = None,
                     progress: bool = True) -> dict[str, int]:
        """This process's contiguous share of ``clips`` and of the distinct ``captions``
        (``distributed.shard_range``) encoded into the cache, then a barrier: afterwards every
        process of the group finds the whole corpus cached. Items already cached are skipped,
        so a rerun after a crash encodes only what is missing; without a process group this is
        the whole work. Returns this process's {"audio": clips encoded, "text": captions encoded}."""
        clips = list(clips)
        unique = list(dict.fromkeys(captions))
        mine_a = clips[dist.shard_range(len(clips))]
        mine_t = unique[dist.shard_range(len(unique))]
        a = self.audio_features(mine_a, audio_encoder, batch_size=batch_size, max_seconds=max_seconds,
                                progress=progress) if mine_a else None
        t = self.text_features(mine_t, text_encoder, batch_size=text_batch_size, progress=progress) if mine_t else None
        dist.barrier()
        return {"audio": int(getattr(a, "computed", 0)), "text": int(getattr(t, "computed", 0))}

    def text_features(self, captions: Sequence[str], encoder, batch_size: int = 64,
                      progress: bool = True) -> TextStore:
        """Encode the captions not cached yet (duplicates once) and return a store over all."""
        shards = _ShardDir(self._dir("text", encoder))
        keys = [_sha1(["caption", c]) for c in captions]
        todo = list(dict.fromkeys((k, c) for k, c in zip(keys, captions) if k not in shards.entries))
        computed, was_training = 0, encoder.training
        encoder.eval()
        buf_k, buf_t, buf_s = [], [], []
        bar = tqdm(total=len(todo), desc="text features", unit="caption", disable=not progress)
        try:
            for s in range(0, len(todo), batch_size):
                chunk = todo[s: s + batch_size]
                with torch.no_grad():
                    feats = encoder([c for _, c in chunk])
                tok, m, sent = (t.float().cpu().numpy() if t.dtype != torch.bool else t.cpu().numpy()
                                for t in (feats[0], feats[1], feats[2]))
                for b, (k, _) in enumerate(chunk):
                    buf_k.append(k)
                    buf_t.append(tok[b][m[b]])
                    buf_s.append(sent[b])
                computed += len(chunk)
                bar.update(len(chunk))
                if len(buf_k) >= self.shard_size:
                    shards.write(buf_k, buf_t, {"sent": np.stack(buf_s)}, {}, self.dtype)
                    buf_k, buf_t, buf_s = [], [], []
        finally:
            if buf_k:
                shards.write(buf_k, buf_t, {"sent": np.stack(buf_s)}, {}, self.dtype)
            bar.close()
            encoder.train(was_training)
        return TextStore(shards, keys, computed)
