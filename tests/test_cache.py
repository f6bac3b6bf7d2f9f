"""FeatureCache: reuse, invalidation, decode failures, crash-resume, store batching."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from soundseek.data.types import Clip
from soundseek.encoders.cache import FeatureCache
from soundseek.encoders.text import TextFeatures

SR, HOP = 8000, 800


class FakeAudio(nn.Module):
    """Frame t = (sum, sum of squares, t, tag) of samples [t*HOP, (t+1)*HOP): padding-invariant."""

    sample_rate, out_dim = SR, 4

    def __init__(self, tag: float = 1.0, fail_after: int | None = None) -> None:
        super().__init__()
        self.tag, self.fail_after, self.calls, self.items = tag, fail_after, 0, 0

    def config(self) -> dict:
        return {"class": "FakeAudio", "tag": self.tag}

    def forward(self, wave, wave_mask):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        self.items += wave.shape[0]
        b, n = wave.shape
        t = max(1, -(-n // HOP))
        x = nn.functional.pad(wave * wave_mask, (0, t * HOP - n)).view(b, t, HOP)
        idx = torch.arange(t, dtype=torch.float32).expand(b, t)
        frames = torch.stack([x.sum(-1), (x * x).sum(-1), idx, torch.full_like(idx, self.tag)], -1)
        valid = -(-wave_mask.sum(1) // HOP)  # ceil(n_valid / HOP)
        return frames, torch.arange(t)[None] < valid[:, None]


def _corpus(tmp_path, n=7):
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, rng.standard_normal(SR // 2 + 700 * i).astype(np.float32) * 0.1, SR, subtype="FLOAT")
        clips.append(Clip(id=f"c{i}", audio=p, captions=[f"clip {i}"]))
    return clips


def _dump(store):
    return {cid: np.asarray(store.get(i)).copy() for i, cid in enumerate(store.ids)}


def test_reuse_and_invalidation(tmp_path):
    clips = _corpus(tmp_path)
    cache = FeatureCache(tmp_path / "cache", dtype="float32", shard_size=3)
    enc = FakeAudio()
    s1 = cache.audio_features(clips, enc, batch_size=2, progress=False)
    assert s1.computed == 7 and enc.items == 7 and len(s1) == 7 and s1.ids == [c.id for c in clips]
    s2 = cache.audio_features(clips, enc, batch_size=2, progress=False)
    assert s2.computed == 0 and enc.items == 7  # nothing recomputed
    assert all(np.array_equal(a, b) for a, b in zip(_dump(s1).values(), _dump(s2).values()))
    st = os.stat(clips[2].audio)
    os.utime(clips[2].audio, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched
    sf.write(clips[4].audio, np.zeros(SR, np.float32), SR, subtype="FLOAT")  # rewritten: new size
    s3 = cache.audio_features(clips, enc, batch_size=2, progress=False)
    assert s3.computed == 2 and enc.items == 9
    assert np.allclose(s3.get(4)[:, :2], 0) and s3.get(4).shape[0] == 10
    s4 = cache.audio_features(clips, FakeAudio(tag=2.0), batch_size=2, progress=False)  # new config
    assert s4.computed == 7 and np.all(s4.get(0)[:, 3] == 2.0)


def test_values_and_batch(tmp_path):
    clips = _corpus(tmp_path, 4)
    store = FeatureCache(tmp_path / "c", dtype="float32").audio_features(clips, FakeAudio(), batch_size=3,
                                                                           progress=False)
    for i, c in enumerate(clips):  # slow reference: each clip alone
        x = torch.from_numpy(sf.read(c.audio, dtype="float32")[0])[None]
        f, m = FakeAudio()(x, torch.ones_like(x, dtype=torch.bool))
        assert np.allclose(store.get(i), f[0][m[0]].numpy(), atol=1e-5)
    frames, mask = store.batch([3, 0])
    assert frames.dtype == torch.float32 and mask.sum(1).tolist() == [store.lengths[3], store.lengths[0]]
    assert torch.equal(frames[1, : store.lengths[0]], torch.from_numpy(np.array(store.get(0))))
    assert not frames[1, store.lengths[0]:].any()
    half = FeatureCache(tmp_path / "h").audio_features(clips, FakeAudio(), progress=False)
    assert half.get(0).dtype == np.float16 and np.allclose(half.get(1), store.get(1), rtol=1e-3, atol=1e-3)


def test_decode_failures_are_recorded(tmp_path):
    clips = _corpus(tmp_path, 3)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really audio")
    clips += [Clip("bad", bad), Clip("gone", tmp_path / "gone.wav")]
    cache = FeatureCache(tmp_path / "c")
    enc = FakeAudio()
    store = cache.audio_features(clips, enc, batch_size=2, progress=False)
    assert len(store) == 3 and set(store.failed) == {"bad", "gone"}
    assert "unreadable" in store.failed["bad"] and "not found" in store.failed["gone"]
    with pytest.raises(KeyError, match="failed"):
        store.index("bad")
    again = cache.audio_features(clips, enc, progress=False)
    assert again.computed == 0 and set(again.failed) == {"bad", "gone"}  # corrupt file not retried


def test_crash_then_resume_equals_uninterrupted(tmp_path):
    clips = _corpus(tmp_path, 9)
    ref = FeatureCache(tmp_path / "ref").audio_features(clips, FakeAudio(), batch_size=2, progress=False)
    cache = FeatureCache(tmp_path / "crash", shard_size=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        cache.audio_features(clips, FakeAudio(fail_after=3), batch_size=2, progress=False)
    (tmp_path / "crash").joinpath("junk").mkdir()  # unrelated files do not disturb the cache
    enc = FakeAudio()
    resumed = cache.audio_features(clips, enc, batch_size=2, progress=False)
    assert resumed.computed == 9 - 6 and enc.items == 3  # the 3 finished batches were kept
    a, b = _dump(ref), _dump(resumed)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_partial_shard_is_ignored(tmp_path):
    clips = _corpus(tmp_path, 3)
    cache = FeatureCache(tmp_path / "c", shard_size=1)
    cache.audio_features(clips, FakeAudio(), batch_size=1, progress=False)
    d = next((tmp_path / "c" / "audio").iterdir())
    victim = sorted(d.glob("shard-*.json"))[0]
    victim.unlink()  # as if killed between writing the .npy and its index
    enc = FakeAudio()
    store = cache.audio_features(clips, enc, batch_size=1, progress=False)
    assert store.computed == 1 and len(store) == 3


class FakeText(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def config(self) -> dict:
        return {"class": "FakeText"}

    def forward(self, caps):
        self.calls += len(caps)
        L = max(len(c.split()) for c in caps)
        tok = torch.zeros(len(caps), L, 3)
        mask = torch.zeros(len(caps), L, dtype=torch.bool)
        for i, c in enumerate(caps):
            for j, w in enumerate(c.split()):
                tok[i, j] = torch.tensor([len(w), j, i * 0 + 1.0])
                mask[i, j] = True
        return TextFeatures(tok, mask, tok.sum(1))


def test_text_cache(tmp_path):
    caps = ["a dog barks", "rain", "a dog barks", "wind in the trees at night"]
    cache = FeatureCache(tmp_path / "c", dtype="float32", shard_size=2)
    enc = FakeText()
    s = cache.text_features(caps, enc, batch_size=2, progress=False)
    assert enc.calls == 3 and len(s) == 4  # the duplicate is encoded once
    tok, mask, sent = s.batch([3, 1, 0])
    ref = enc(["wind in the trees at night", "rain", "a dog barks"])
    assert torch.equal(mask, ref.mask) and torch.equal(tok, ref.tokens) and torch.equal(sent, ref.sentence)
    s2 = cache.text_features(caps + ["new caption"], enc, progress=False)
    assert s2.computed == 1 and enc.calls == 3 + 3 + 1


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="Valid: float16, float32"):
        FeatureCache(tmp_path, dtype="int8")
