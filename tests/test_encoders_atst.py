"""ATST-Frame: official key layout and Lightning container, safe loading, front end, masks, long clips."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from soundseek.encoders import build_audio_encoder
from soundseek.encoders.atst import ATST_FRONTEND, ATSTFrame
from soundseek.encoders.checkpoint import CheckpointError

torch.set_num_threads(1)

TINY = dict(embed_dim=32, depth=2, num_heads=2, spec_w=101, max_seconds=1.0)  # 25 positions = 1 s


def _tiny(seed: int = 0, **kw) -> ATSTFrame:
    torch.manual_seed(seed)
    return ATSTFrame(**{**TINY, **kw}).eval()


def _wave(b: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, n, generator=g) * 0.1


def _lightning(sd: dict, prefix: str = "model.teacher.encoder.") -> dict:
    """The container of a Lightning checkpoint of FrameATSTLightningModule."""
    state = {prefix + k: v for k, v in sd.items()}
    state.update({"model.student.encoder." + k: v.clone() for k, v in sd.items()})
    state["model.teacher.projector.0.weight"] = torch.zeros(3, 3)  # other sub-modules: ignored
    state["model.student.predictor.0.weight"] = torch.zeros(3, 3)
    return {"epoch": 10, "global_step": 1000, "pytorch-lightning_version": "1.7.7", "state_dict": state,
            "hyper_parameters": {"arch": "base", "patch_h": 64, "patch_w": 4, "n_mels": 64, "spec_h": 64,
                                 "nprompt": 0, "pos_type": "cut", "learning_rate": 8e-5},
            "optimizer_states": [], "lr_schedulers": []}


def test_full_size_official_key_layout(tmp_path):
    a = ATSTFrame()  # FrameAST_base
    sd = a.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    expected = {"mask_embed": (1, 1, 768), "pos_embed": (1, 251, 768),
                "patch_embed.patch_embed.weight": (768, 256), "patch_embed.patch_embed.bias": (768,),
                "norm_frame.weight": (768,), "norm_frame.bias": (768,)}
    for i in range(12):
        for name, shp in (("norm1.weight", (768,)), ("norm1.bias", (768,)), ("attn.qkv.weight", (2304, 768)),
                          ("attn.proj.weight", (768, 768)), ("attn.proj.bias", (768,)),
                          ("norm2.weight", (768,)), ("norm2.bias", (768,)), ("mlp.fc1.weight", (3072, 768)),
                          ("mlp.fc1.bias", (3072,)), ("mlp.fc2.weight", (768, 3072)), ("mlp.fc2.bias", (768,))):
            expected[f"blocks.{i}.{name}"] = shp
    assert shapes == expected  # no qkv bias, no front-end buffers
    path = tmp_path / "atstframe_base.ckpt"
    torch.save(_lightning(sd), path)
    b = ATSTFrame.from_pretrained(path)
    assert all(torch.equal(v, b.state_dict()[k]) for k, v in sd.items())
    assert b.config()["weights"].startswith(path.name + ":") and b.out_dim == 768 and b.sample_rate == 16000
    wave = _wave(1, 3200)  # 0.2 s: 21 mel frames -> 5 tokens
    with torch.no_grad():
        fa, ma = a.eval()(wave)
        fb, mb = b(wave)
    assert fa.shape == (1, 5, 768) and torch.equal(fa, fb) and ma.tolist() == [[True] * 5]
    assert a.max_samples == 160000  # 10 s = 1001 frames = 250 tokens fits pos_embed exactly


@pytest.mark.parametrize("wrap", ["lightning", "finetuned", "bare", "module"])
def test_tiny_roundtrip(tmp_path, wrap):
    a = _tiny()
    sd = a.state_dict()
    obj = (_lightning(sd) if wrap == "lightning" else
           {"state_dict": {"encoder.encoder." + k: v for k, v in sd.items()}} if wrap == "finetuned" else
           {"module." + k: v for k, v in sd.items()} if wrap == "module" else sd)
    torch.save(obj, tmp_path / "w.ckpt")
    b = ATSTFrame.from_pretrained(tmp_path / "w.ckpt", **TINY)
    wave = _wave(2, 16000)
    mask = torch.ones_like(wave, dtype=torch.bool)
    mask[1, 7000:] = False
    with torch.no_grad():
        fa, ma = a(wave, mask)
        fb, mb = b(wave, mask)
    assert torch.equal(fa, fb) and torch.equal(ma, mb)


def test_bad_checkpoints_name_the_keys(tmp_path):
    a = _tiny()
    sd = dict(a.state_dict())
    sd.pop("mask_embed")
    sd["cls_token"] = torch.zeros(1, 1, 32)
    sd["pos_embed"] = torch.zeros(1, 51, 32)
    path = tmp_path / "bad.ckpt"
    torch.save(_lightning(sd), path)
    with pytest.raises(CheckpointError) as e:
        ATSTFrame.from_pretrained(path, **TINY)
    msg = str(e.value)
    assert "mask_embed" in msg and "cls_token" in msg and "pos_embed" in msg and "missing" in msg
    assert "projector" not in msg and "student" not in msg
    with pytest.warns(UserWarning, match="mask_embed"):
        b = ATSTFrame.from_pretrained(path, strict=False, **TINY)
    assert torch.equal(b.blocks[1].mlp.fc2.weight, a.blocks[1].mlp.fc2.weight)
    with pytest.raises(CheckpointError, match="not found"):
        ATSTFrame.from_pretrained(tmp_path / "nope.ckpt", **TINY)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.ckpt").write_bytes(pickle.dumps({"state_dict": {"x": Evil()}}))
    with pytest.raises(CheckpointError, match="weights_only"):
        ATSTFrame.from_pretrained(tmp_path / "evil.ckpt", **TINY)


def _reference_frontend(wave: torch.Tensor) -> torch.Tensor:
    """torchaudio MelSpectrogram + AmplitudeToDB(top_db=80) + MinMax written out (one clip)."""
    sr, n_fft, hop, n_mels = 16000, 1024, 160, 64
    spec = torch.stft(wave.double(), n_fft, hop_length=hop, win_length=n_fft, window=torch.hann_window(
        n_fft, dtype=torch.float64), center=True, pad_mode="reflect", return_complex=True).abs() ** 2
    mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    f_pts = 700.0 * (10 ** (np.linspace(mel(60.0), mel(7800.0), n_mels + 2) / 2595.0) - 1.0)
    all_freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    slopes = f_pts[None, :] - all_freqs[:, None]
    f_diff = np.diff(f_pts)
    fb = np.maximum(0, np.minimum(-slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]))  # (F, M)
    m = torch.from_numpy(fb).T @ spec  # (B, M, T)
    db = 10.0 * torch.log10(m.clamp(min=1e-10))
    db = torch.maximum(db, db.amax(dim=(1, 2), keepdim=True) - 80.0)
    return ((db + 79.6482) / (50.6842 + 79.6482) * 2 - 1).float()


def test_frontend_matches_official_preprocessing():
    m = _tiny()
    wave = _wave(2, 16000, seed=3)
    wave[1, 8000:] = 0.0  # digital silence: the top_db floor is active
    spec, t_valid = m.spectrogram(wave)
    ref = _reference_frontend(wave)
    assert spec.shape == (2, 64, 101) == ref.shape and t_valid.tolist() == [101, 101]
    assert torch.allclose(spec, ref, atol=1e-4, rtol=0)
    assert math.isclose(float(spec[1].min()), float(spec[1].max() - 160.0 / 130.3324), abs_tol=1e-4)
    assert ATST_FRONTEND["sample_rate"] == 16000 and ATST_FRONTEND["n_mels"] == 64


def test_shapes_masks_and_padding_invariance():
    m = _tiny()
    lens = [16000, 10000, 3000, 300]  # 1 s, 0.625 s, 0.19 s, shorter than one patch (480 samples)
    waves = [_wave(1, n, seed=i)[0] for i, n in enumerate(lens)]
    batch = torch.zeros(4, 16000)
    mask = torch.zeros(4, 16000, dtype=torch.bool)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
        mask[i, : len(w)] = True
    with torch.no_grad():
        f, fm = m(batch, mask)
        alone = [m(w[None]) for w in waves]
    counts = [max(1, (1 + n // 160) // 4) for n in lens]  # T = 1 + N // 160 mel frames, T // 4 tokens
    assert counts == [25, 15, 4, 1]
    assert f.shape == (4, 25, 32) and fm.dtype == torch.bool
    assert fm.equal(torch.arange(25)[None] < torch.tensor(counts)[:, None])
    for i, (fa, ma) in enumerate(alone):
        assert fa.shape == (1, counts[i], 32) and ma.all()
        assert torch.allclose(f[i, : counts[i]], fa[0], atol=1e-5), i  # padding does not leak
    with torch.no_grad():
        assert torch.allclose(m(batch[:1])[0], m(batch[:1], mask[:1])[0], atol=1e-6)
    mask[3] = False  # an all-padding row: no valid frame, no NaN
    with torch.no_grad():
        f2, fm2 = m(batch, mask)
    assert not fm2[3].any() and torch.isfinite(f2).all()
    assert torch.allclose(f2[0], f[0], atol=1e-5)


def test_long_clips_segment_crop_error():
    m = _tiny()
    wave = _wave(2, 40000, seed=5)  # 2.5 s with max_seconds=1
    mask = torch.ones_like(wave, dtype=torch.bool)
    mask[1, 25000:] = False
    with torch.no_grad():
        f, fm = m(wave, mask)
        ref0 = torch.cat([m(wave[:1, s:e])[0][0] for s, e in ((0, 16000), (16000, 32000), (32000, 40000))])
        ref1 = torch.cat([m(wave[1:, s:e])[0][0] for s, e in ((0, 16000), (16000, 25000))])
    assert fm.sum(1).tolist() == [ref0.shape[0], ref1.shape[0]] == [25 + 25 + 12, 25 + 14]
    assert torch.allclose(f[0], ref0, atol=1e-5) and torch.allclose(f[1, :39], ref1, atol=1e-5)
    crop = _tiny(long="center")
    with torch.no_grad():
        fc, mc = crop(wave, mask)
        assert torch.allclose(fc[0], m(wave[:1, 12000:28000])[0][0], atol=1e-5)  # central second
        assert torch.allclose(fc[1], m(wave[1:, 4500:20500])[0][0], atol=1e-5) and mc.all()
    with pytest.raises(ValueError, match="Invalid long 'crop'. Valid: segment, center, error"):
        _tiny(long="crop")  # one name, one meaning: PaSST's first seconds are long="start"
    with pytest.raises(ValueError, match="max_seconds"):
        _tiny(long="error")(wave)
    with pytest.raises(ValueError, match="pos_embed"):
        ATSTFrame(**{**TINY, "max_seconds": 1.1})


def test_registry(tmp_path):
    m = build_audio_encoder("atst", pretrained=False, **TINY)
    assert isinstance(m, ATSTFrame) and m.config()["arch"] == "atst_frame"
    from soundseek.config import ConfigError

    with pytest.raises(ConfigError, match="path"):
        build_audio_encoder("atst")
    torch.save(_lightning(m.state_dict()), tmp_path / "atstframe_base.ckpt")
    b = build_audio_encoder("atst", path=str(tmp_path / "atstframe_base.ckpt"), **TINY)
    assert torch.equal(b.pos_embed, m.pos_embed)
