"""SmallCNN interface, batch-vs-loop equality, gradients; registry; shared mask helpers."""
from __future__ import annotations

import pytest
import torch

from soundseek.config import ConfigError
from soundseek.encoders import AUDIO_ENCODERS, build_audio_encoder
from soundseek.encoders.base import masked_mean_max, pool_mask
from soundseek.encoders.small_cnn import SmallCNN

torch.set_num_threads(2)


def test_small_cnn_batch_equals_loop_and_trains():
    torch.manual_seed(0)
    m = SmallCNN(channels=8, n_blocks=3, out_dim=16).eval()
    wave = torch.randn(3, 16000) * 0.1
    with torch.no_grad():
        f, mask = m(wave)
        for i in range(3):  # slow reference: one at a time
            fi, _ = m(wave[i: i + 1])
            assert torch.allclose(f[i], fi[0], atol=1e-5)
    assert f.shape == (3, (1 + 16000 // 320) // 8, 16) and mask.all()
    m.train()
    x = wave.clone().requires_grad_(True)
    out, _ = m(x)
    out.pow(2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and m.proj.weight.grad.abs().sum() > 0
    assert m.config()["weights"] != SmallCNN(channels=8, n_blocks=3, out_dim=16).config()["weights"]


def test_short_input_gets_one_frame():
    m = SmallCNN(channels=4, n_blocks=4, out_dim=8).eval()
    with torch.no_grad():
        f, mask = m(torch.randn(1, 500))
    assert f.shape[1] == 1 and mask.tolist() == [[True]]


def test_pool_mask_matches_loop():
    mask = torch.arange(40)[None] < torch.tensor([40, 33, 7, 0])[:, None]
    out = pool_mask(mask, (2, 2, 2))
    for b, n in enumerate([40, 33, 7, 0]):  # alone: floor(n / 8) frames, at least 1 if n > 0
        assert int(out[b].sum()) == (max(1, n // 8) if n else 0)
    frames = torch.randn(2, 5, 3)
    m = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    ref = torch.stack([frames[0, :3].mean(0) + frames[0, :3].amax(0), frames[1].mean(0) + frames[1].amax(0)])
    assert torch.allclose(masked_mean_max(frames, m), ref)


def test_registry():
    names = AUDIO_ENCODERS.names()
    assert names == sorted(names) and {"aisfx", "atst", "cnn14", "passt", "resnet38", "small_cnn"} <= set(names)
    assert build_audio_encoder("small_cnn", channels=4, n_blocks=2, out_dim=8).out_dim == 8
    with pytest.raises(ConfigError, match="needs path="):
        build_audio_encoder("cnn14")
    with pytest.raises(KeyError, match="Valid: " + ", ".join(names)):
        build_audio_encoder("beats")
    with pytest.raises(ValueError, match="pools the 64 mel bins below 1"):
        SmallCNN(n_blocks=7)
