"""Sharded feature extraction and indexing over 2 gloo processes equal a 1-process run;
a rerun after a crashed rank redoes only the missing work."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from soundseek import distributed as dist
from soundseek.data.types import Clip
from soundseek.distributed import shard_range
from soundseek.index.sharded import run_sharded

sys.path.insert(0, str(Path(__file__).resolve().parent))
from index_helpers import make_audio_folder  # noqa: E402
from test_distributed import spawn  # noqa: E402

pytestmark = pytest.mark.distributed


class FrameEncoder(nn.Module):
    """Frame-wise fixed projection of 400-sample frames (batch-invariant, exact to compare)."""

    sample_rate, out_dim = 16000, 6

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.proj = torch.randn(400, self.out_dim, generator=g, dtype=torch.float32)

    def config(self) -> dict:
        return {"name": "frame-test", "dim": self.out_dim}

    def forward(self, wave, mask):
        t = wave.shape[1] // 400
        frames = wave[:, : t * 400].reshape(wave.shape[0], t, 400) @ self.proj  # (B, T, D)
        fmask = mask[:, : t * 400].reshape(mask.shape[0], t, 400).all(-1) if mask is not None else None
        return frames, fmask


class CharEncoder(nn.Module):
    """Captions -> (tokens (B, L, 4), mask, sentence): per-character features."""

    def config(self) -> dict:
        return {"name": "char-test"}

    def forward(self, texts):
        L = max(len(t) for t in texts)
        tok = torch.zeros(len(texts), L, 4)
        mask = torch.zeros(len(texts), L, dtype=torch.bool)
        for i, t in enumerate(texts):
            c = torch.tensor([ord(ch) for ch in t], dtype=torch.float32)
            tok[i, : len(t)] = torch.stack([c, c % 7, c % 3, c // 10], -1)  # integers: exact sums
            mask[i, : len(t)] = True
        sent = torch.stack([tok[i, : len(t)].sum(0) for i, t in enumerate(texts)])  # batch-invariant
        return tok, mask, sent


def corpus_clips(root: Path, make: bool = False) -> tuple[list[Clip], list[str]]:
    if make:
        make_audio_folder(root, n=9, bad=True)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".wav", ".flac", ".ogg"))
    clips = [Clip(id=p.relative_to(root).as_posix(), audio=p, captions=[f"sound {i}", f"clip {i % 4}"])
             for i, p in enumerate(files)]
    return clips, [c for clip in clips for c in clip.captions]


def _square(chunk: list) -> list:
    return [{"x": x, "sq": np.array([x * x], dtype=np.int64)} for x in chunk]


def _sharded_worker(out: str, crash_on: int) -> None:
    def fn(chunk):
        if crash_on in chunk and dist.rank() == 1:
            raise RuntimeError("simulated crash of rank 1")
        with open(Path(out) / f"done-rank{dist.rank()}.txt", "a") as f:
            f.write(f"{chunk[0]}\n")
        return _square(chunk)

    merged = run_sharded(list(range(23)), fn, Path(out) / "work", key="squares", shard_size=4)
    if dist.is_main():
        (Path(out) / "merged.json").write_text(json.dumps([[r["x"], int(r["sq"][0])] for r in merged]))


def _cache_worker(cache_dir: str, root: str) -> None:
    from soundseek.encoders.cache import FeatureCache

    clips, caps = corpus_clips(Path(root))
    counts = FeatureCache(cache_dir, dtype="float32", shard_size=2).encode_share(
        clips, caps, FrameEncoder(), CharEncoder(), batch_size=3, progress=False)
    (Path(cache_dir) / f"counts-rank{dist.rank()}.json").write_text(json.dumps(counts))


def _index_worker(root: str, index_dir: str) -> None:
    from soundseek.index import HashEmbedder, build_index

    # no sharded=: a process group of two ranks makes build_index shard by itself
    build_index(root, HashEmbedder(), index_dir, batch_size=4, progress=False)


def test_shard_range_covers_every_item_once():
    for n in (0, 1, 5, 23):
        for world in (1, 2, 3, 8):
            got = [i for r in range(world) for i in range(n)[shard_range(n, r, world)]]
            assert got == list(range(n))
            assert [len(range(n)[shard_range(n, r, world)]) for r in range(world)] == [len(a) for a in np.array_split(np.arange(n), world)]
    with pytest.raises(ValueError, match="outside"):
        shard_range(4, 2, 2)


def test_run_sharded_merges_in_order_and_a_rerun_redoes_only_missing_shards(tmp_path):
    single = run_sharded(list(range(23)), _square, tmp_path / "single", key="squares", shard_size=4)
    assert [r["x"] for r in single] == list(range(23)) and int(single[5]["sq"][0]) == 25
    # rank 1 crashes on the shard holding item 13 (shard 3; rank 1 owns shards 1, 3, 5)
    # mp.spawn reports whichever rank it sees fail first: the crashing rank 1, or rank 0 whose
    # barrier lost its peer
    with pytest.raises(Exception, match="simulated crash|crashing|Connection reset by peer|Connection closed by peer"):
        spawn(_sharded_worker, str(tmp_path), 13)
    first = {r: (tmp_path / f"done-rank{r}.txt").read_text().split() for r in (0, 1)}
    assert first[1] == ["4"]  # shard 1 finished before the crash
    for r in (0, 1):
        (tmp_path / f"done-rank{r}.txt").unlink(missing_ok=True)
    spawn(_sharded_worker, str(tmp_path), -1)
    redo = {r: (tmp_path / f"done-rank{r}.txt").read_text().split() if (tmp_path / f"done-rank{r}.txt").exists() else []
            for r in (0, 1)}
    assert "4" not in redo[1] and sorted(redo[1]) == ["12", "20"]  # only shards 3 and 5 were left
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert merged == [[r["x"], int(r["sq"][0])] for r in single]
    assert not list((tmp_path / "work").glob("shards-*"))  # cleaned up after the merge
    with pytest.raises(ValueError, match="results for"):
        run_sharded([1, 2], lambda c: c[:1], tmp_path / "bad", key="k")


def _stores(cache_dir: Path, root: Path):
    from soundseek.encoders.cache import FeatureCache

    clips, caps = corpus_clips(root)
    cache = FeatureCache(cache_dir, dtype="float32", shard_size=2)
    return cache.audio_features(clips, FrameEncoder(), progress=False), cache.text_features(caps, CharEncoder(), progress=False)


def test_two_process_feature_cache_equals_single_process_and_resumes(tmp_path):
    root = tmp_path / "audio"
    corpus_clips(root, make=True)
    spawn(_cache_worker, str(tmp_path / "c2"), str(root))
    a2, t2 = _stores(tmp_path / "c2", root)
    assert a2.computed == 0 and t2.computed == 0  # everything was written by the 2 ranks
    a1, t1 = _stores(tmp_path / "c1", root)
    assert a1.computed == len(a1) > 0 and t1.computed > 0
    assert a2.ids == a1.ids and a2.failed == a1.failed and len(a1.failed) == 3
    for i in range(len(a1)):
        np.testing.assert_array_equal(a2.get(i), a1.get(i))
    for i in range(len(t1)):
        np.testing.assert_array_equal(t2.get(i), t1.get(i))
        np.testing.assert_array_equal(t2.sentence(i), t1.sentence(i))
    counts = [json.loads((tmp_path / "c2" / f"counts-rank{r}.json").read_text()) for r in (0, 1)]
    assert sum(c["audio"] for c in counts) == len(a1) and min(c["audio"] for c in counts) > 0
    # a crashed run: only the clips before the crash are cached; the rerun encodes the rest
    from soundseek.encoders.cache import FeatureCache

    clips, caps = corpus_clips(root)
    FeatureCache(tmp_path / "c3", dtype="float32", shard_size=2).audio_features(clips[:5], FrameEncoder(), progress=False)
    spawn(_cache_worker, str(tmp_path / "c3"), str(root))
    counts = [json.loads((tmp_path / "c3" / f"counts-rank{r}.json").read_text()) for r in (0, 1)]
    done_first = sum(1 for c in clips[:5] if c.id not in a1.failed)
    assert sum(c["audio"] for c in counts) == len(a1) - done_first


def test_two_process_index_equals_single_process(tmp_path):
    from soundseek.index import HashEmbedder, Searcher, build_index

    root = tmp_path / "audio"
    make_audio_folder(root, n=10, bad=True)
    rep1 = build_index(root, HashEmbedder(), tmp_path / "idx1", batch_size=4, progress=False)
    spawn(_index_worker, str(root), str(tmp_path / "idx2"))
    s1, s2 = Searcher(tmp_path / "idx1", HashEmbedder()), Searcher(tmp_path / "idx2", HashEmbedder())
    for q in ("low rumble", "high whistle", "mid tone"):
        h1, h2 = s1.search_text(q, k=20), s2.search_text(q, k=20)
        assert [h["path"] for h in h1] == [h["path"] for h in h2] and len(h1) == rep1.total
        assert [h["score"] for h in h1] == pytest.approx([h["score"] for h in h2], abs=1e-6)
    # a rerun with nothing new embeds nothing and changes nothing
    rep = build_index(root, HashEmbedder(), tmp_path / "idx2", sharded=True, batch_size=4, progress=False)
    assert rep.added == 0 and rep.unchanged == rep1.total


PREPARE_SETS = ["data.synthetic_clips=12", "data.max_seconds=2", "encoders.cache_dtype=float32", "train.progress=false"]


def _features_worker(cache_dir: str) -> None:
    """``torchrun ... soundseek features`` on this rank."""
    from soundseek.cli.main import main

    torch.set_default_dtype(torch.float32)  # as under torchrun (spawn() sets float64)
    sets = [f"data.cache_dir={cache_dir}", *PREPARE_SETS]
    assert main(["features", *[a for s in sets for a in ("--set", s)]]) == 0


def test_two_process_features_honour_cache_dtype_and_a_single_process_then_encodes_nothing(tmp_path):
    """Sharded feature extraction is the one ``prepare`` path: the recipe's float32 cache is what
    the ranks write, so a following single-process run finds every feature cached."""
    from soundseek.config import apply_overrides
    from soundseek.models.config import Config
    from soundseek.train.data import prepare

    cache = tmp_path / "cache"
    spawn(_features_worker, str(cache))
    arrays = list((cache / "features").rglob("shard-*.npy"))
    assert arrays and {str(np.load(a, mmap_mode="r").dtype) for a in arrays} == {"float32"}
    configs = [json.loads(c.read_text()) for c in (cache / "features").rglob("config.json")]
    assert configs and {c["dtype"] for c in configs} == {"float32"}
    cfg = apply_overrides(Config(), [f"data.cache_dir={cache}", *PREPARE_SETS])
    data = prepare(cfg, progress=False)
    assert data.audio.computed == 0 and data.text.computed == 0
    assert len(data.audio) == 12 and not data.audio.failed
