"""PaSST: official key layout, safe loading, front end, masks, long clips."""
from __future__ import annotations

import math
import pickle

import pytest
import torch

from soundseek.encoders import build_audio_encoder
from soundseek.encoders.checkpoint import CheckpointError
from soundseek.encoders.passt import PASST_FRONTEND, PaSST, kaldi_mel_banks

torch.set_num_threads(1)

TINY = dict(embed_dim=32, depth=2, num_heads=2, num_classes=7, max_seconds=1.0)


def _tiny(seed: int = 0, **kw) -> PaSST:
    torch.manual_seed(seed)
    return PaSST(**{**TINY, **kw}).eval()


def _wave(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, generator=g) * 0.1


def test_full_size_official_key_layout(tmp_path):
    a = PaSST()  # passt_s_swa_p16_128_ap476
    sd = a.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    expected = {  # released passt-s-f128-p16-s10-ap.476-swa.pt (bare state dict)
        "cls_token": (1, 1, 768), "dist_token": (1, 1, 768), "new_pos_embed": (1, 2, 768),
        "freq_new_pos_embed": (1, 768, 12, 1), "time_new_pos_embed": (1, 768, 1, 99),
        "patch_embed.proj.weight": (768, 1, 16, 16), "patch_embed.proj.bias": (768,),
        "norm.weight": (768,), "norm.bias": (768,),
        "head.0.weight": (768,), "head.0.bias": (768,), "head.1.weight": (527, 768), "head.1.bias": (527,),
        "head_dist.weight": (527, 768), "head_dist.bias": (527,),
    }
    for i in range(12):
        for name, shp in (("norm1.weight", (768,)), ("norm1.bias", (768,)), ("attn.qkv.weight", (2304, 768)),
                          ("attn.qkv.bias", (2304,)), ("attn.proj.weight", (768, 768)), ("attn.proj.bias", (768,)),
                          ("norm2.weight", (768,)), ("norm2.bias", (768,)), ("mlp.fc1.weight", (3072, 768)),
                          ("mlp.fc1.bias", (3072,)), ("mlp.fc2.weight", (768, 3072)), ("mlp.fc2.bias", (768,))):
            expected[f"blocks.{i}.{name}"] = shp
    assert shapes == expected  # exactly these keys: no front-end buffers in the state dict
    assert sum(v.numel() for v in sd.values()) == 86_153_758
    path = tmp_path / "passt-s-f128-p16-s10-ap.476-swa.pt"
    torch.save(sd, path)
    b = PaSST.from_pretrained(path)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in sd.items())
    assert b.config()["weights"].startswith(path.name + ":") and b.out_dim == 768 and b.sample_rate == 32000
    wave = _wave(1, 6000)  # one time patch: a cheap forward through the full model
    with torch.no_grad():
        fa, ma = a.eval()(wave)
        fb, mb = b(wave)
    assert fa.shape == (1, 1, 768) and torch.equal(fa, fb) and ma.tolist() == [[True]]


@pytest.mark.parametrize("wrap", ["bare", "model", "module"])
def test_tiny_roundtrip(tmp_path, wrap):
    a = _tiny()
    sd = a.state_dict()
    obj = {"model": sd} if wrap == "model" else {"module." + k: v for k, v in sd.items()} if wrap == "module" else sd
    torch.save(obj, tmp_path / "w.pt")
    b = PaSST.from_pretrained(tmp_path / "w.pt", **TINY)
    wave = _wave(2, 30000)
    mask = torch.ones_like(wave, dtype=torch.bool)
    mask[1, 12000:] = False
    with torch.no_grad():
        fa, ma = a(wave, mask)
        fb, mb = b(wave, mask)
        ca, cb = a.clip(wave, mask), b.clip(wave, mask)
    assert torch.equal(fa, fb) and torch.equal(ma, mb)
    assert torch.equal(ca["logits"], cb["logits"]) and ca["logits"].shape == (2, 7)
    assert ca["features"].shape == (2, 32)


def test_bad_checkpoints_name_the_keys(tmp_path):
    a = _tiny()
    sd = dict(a.state_dict())
    sd.pop("dist_token")
    sd["pos_embed"] = torch.zeros(1, 3, 32)
    sd["time_new_pos_embed"] = torch.zeros(1, 32, 1, 50)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(CheckpointError) as e:
        PaSST.from_pretrained(path, **TINY)
    msg = str(e.value)
    assert "dist_token" in msg and "pos_embed" in msg and "time_new_pos_embed" in msg and "missing" in msg
    with pytest.warns(UserWarning, match="dist_token"):
        b = PaSST.from_pretrained(path, strict=False, **TINY)
    assert torch.equal(b.blocks[1].mlp.fc2.weight, a.blocks[1].mlp.fc2.weight)
    with pytest.raises(CheckpointError, match="not found"):
        PaSST.from_pretrained(tmp_path / "nope.pt", **TINY)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(CheckpointError, match="weights_only"):
        PaSST.from_pretrained(tmp_path / "evil.pt", **TINY)


def _reference_frontend(wave: torch.Tensor) -> torch.Tensor:
    """PaSST's eval-mode AugmentMelSTFT written out directly (torchaudio's Kaldi banks in float32)."""
    x = torch.nn.functional.conv1d(wave[:, None], torch.tensor([[[-0.97, 1.0]]]))[:, 0]
    spec = torch.stft(x, 1024, hop_length=320, win_length=800, center=True, normalized=False,
                      window=torch.hann_window(800, periodic=False), return_complex=True)
    power = spec.abs() ** 2  # (B, 513, T)
    mel_of = lambda f: 1127.0 * torch.log(1.0 + f / 700.0)  # noqa: E731
    lo, hi = mel_of(torch.tensor(0.0)), mel_of(torch.tensor(15000.0))
    delta = (hi - lo) / 129
    b = torch.arange(128, dtype=torch.float32)[:, None]
    left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel_of(31.25 * torch.arange(512, dtype=torch.float32))[None]
    banks = torch.clamp(torch.minimum((m - left) / (centre - left), (right - m) / (right - centre)), min=0)
    banks = torch.nn.functional.pad(banks, (0, 1))
    mel = torch.log(banks @ power + 1e-5)
    return (mel + 4.5) / 5.0


def test_frontend_matches_official_preprocessing():
    m = _tiny()
    wave = _wave(2, 32000, seed=3)
    spec, t_valid = m.spectrogram(wave)
    ref = _reference_frontend(wave)
    assert spec.shape == (2, 1, 128, 100) and ref.shape == (2, 128, 100) and t_valid.tolist() == [100, 100]
    assert torch.allclose(spec[:, 0], ref, atol=2e-4, rtol=0)
    # the LogMel-only approximation (HTK filters linear in Hz) is close but not equal
    approx, _ = _tiny(mel="htk").spectrogram(wave)
    d = (approx[:, 0] - ref).abs()
    assert d.max() > 1e-3 and d.mean() < 0.05
    fb = kaldi_mel_banks(128, 1024, 32000, 0.0, 15000.0)
    assert fb.shape == (128, 513) and (fb[:, -1] == 0).all() and fb.max() <= 1.0
    assert (fb[:, int(15000 / 31.25) + 1:] == 0).all()  # nothing above fmax
    assert PASST_FRONTEND["fmax"] == 15000.0  # official fmax=None -> 16000 - 2000 // 2


def test_shapes_masks_and_padding_invariance():
    m = _tiny()
    lens = [32000, 20000, 9000, 3000]  # 1 s, 0.625 s, 0.28 s, shorter than one patch (4801 samples)
    waves = [_wave(1, n, seed=i)[0] for i, n in enumerate(lens)]
    batch = torch.zeros(4, 32000)
    mask = torch.zeros(4, 32000, dtype=torch.bool)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
        mask[i, : len(w)] = True
    with torch.no_grad():
        f, fm = m(batch, mask)
        alone = [m(w[None]) for w in waves]
    # valid mel frames 1 + (n - 1) // 320 -> patches (T - 16) // 10 + 1 (at least 1)
    counts = [max(1, (1 + (n - 1) // 320 - 16) // 10 + 1) for n in lens]
    assert counts == [9, 5, 2, 1]
    assert f.shape == (4, 9, 32) and fm.dtype == torch.bool
    assert fm.sum(1).tolist() == counts and fm.equal(torch.arange(9)[None] < torch.tensor(counts)[:, None])
    for i, (fa, ma) in enumerate(alone):
        assert fa.shape == (1, counts[i], 32) and ma.all()
        # padding does not change a clip's valid frames (per-example mel + masked attention)
        assert torch.allclose(f[i, : counts[i]], fa[0], atol=1e-5), i
    # None mask == all-True mask
    with torch.no_grad():
        assert torch.allclose(m(batch[:1])[0], m(batch[:1], mask[:1])[0], atol=1e-6)
    # the official behaviour (padding attended) changes padded clips' frames; masks are the same
    off = _tiny(mask_attention=False)
    with torch.no_grad():
        g, gm = off(batch, mask)
    assert torch.equal(gm, fm) and torch.allclose(g[0], f[0], atol=1e-5)
    assert not torch.allclose(g[1, :5], f[1, :5], atol=1e-3)
    # an all-padding row has no valid frame and no NaN
    mask[3] = False
    with torch.no_grad():
        f2, fm2 = m(batch, mask)
    assert not fm2[3].any() and torch.isfinite(f2).all()


def test_long_clips_segment_crop_error():
    m = _tiny()
    n = 80000  # 2.5 s with max_seconds=1: segments of 1, 1, 0.5 s
    wave = _wave(2, n, seed=5)
    mask = torch.ones_like(wave, dtype=torch.bool)
    mask[1, 50000:] = False
    with torch.no_grad():
        f, fm = m(wave, mask)
        parts0 = [m(wave[:1, s:e])[0][0] for s, e in ((0, 32000), (32000, 64000), (64000, 80000))]
        parts1 = [m(wave[1:, s:e])[0][0] for s, e in ((0, 32000), (32000, 50000))]
    ref0, ref1 = torch.cat(parts0), torch.cat(parts1)
    assert fm.sum(1).tolist() == [ref0.shape[0], ref1.shape[0]] == [9 + 9 + 4, 9 + 5]
    assert f.shape == (2, 22, 32)
    assert torch.allclose(f[0], ref0, atol=1e-5) and torch.allclose(f[1, :14], ref1, atol=1e-5)
    crop = _tiny(long="start")
    with torch.no_grad():
        fc, mc = crop(wave, mask)
        assert torch.allclose(fc, m(wave[:, :32000])[0], atol=1e-6) and mc.all()
    with pytest.raises(ValueError, match="Invalid long 'crop'. Valid: segment, start, error"):
        _tiny(long="crop")  # one name, one meaning: ATST's central crop is long="center"
    with pytest.raises(ValueError, match="max_seconds"):
        _tiny(long="error")(wave)
    with pytest.raises(ValueError, match="time_patches"):
        PaSST(**{**TINY, "max_seconds": 11.0})
    assert math.isclose(PaSST(**{**TINY, "max_seconds": 10.0}).max_seconds, 10.0)


def test_registry(tmp_path):
    m = build_audio_encoder("passt", pretrained=False, **TINY)
    assert isinstance(m, PaSST) and m.config()["arch"] == "passt"
    from soundseek.config import ConfigError

    with pytest.raises(ConfigError, match="path"):
        build_audio_encoder("passt")
    torch.save(m.state_dict(), tmp_path / "w.pt")
    b = build_audio_encoder("passt", path=str(tmp_path / "w.pt"), **TINY)  # the trainer passes path=
    assert torch.equal(b.cls_token, m.cls_token)
