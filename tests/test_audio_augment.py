"""SpecAugment: vectorised masking vs a loop, masks, determinism, eval identity (METHODS.md §2)."""
from __future__ import annotations

import pytest
import torch

from soundseek.audio import SpecAugment


def loop_apply(x, draw, mask, mask_value):
    """Slow reference: fill stripes example by example with Python loops."""
    out = x.clone()
    b, t, f = x.shape
    for i in range(b):
        if not draw["apply"][i]:
            continue
        n_valid = int(mask[i].sum()) if mask is not None else t
        if mask_value == "zero":
            fill = 0.0
        else:
            fill = x[i, :n_valid].mean() if n_valid > 0 else 0.0
        for s, w in zip(draw["t_start"][i].tolist(), draw["t_width"][i].tolist()):
            for tt in range(s, s + w):
                out[i, tt, :] = fill
        for s, w in zip(draw["f_start"][i].tolist(), draw["f_width"][i].tolist()):
            for ff in range(s, s + w):
                for tt in range(t):
                    if mask is None or mask[i, tt]:
                        out[i, tt, ff] = fill
    return out


@pytest.mark.parametrize("mask_value", ["zero", "mean"])
def test_vectorised_equals_loop(mask_value):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 40, 16, generator=g)
    lengths = torch.tensor([40, 25, 3, 0, 12])
    mask = torch.arange(40)[None] < lengths[:, None]
    aug = SpecAugment(time_masks=3, time_width=10, freq_masks=2, freq_width=5, p=0.8, mask_value=mask_value)
    draw = aug.draw(lengths, 16, generator=g)
    # time stripes inside the valid frames, widths within bounds
    assert ((draw["t_start"] + draw["t_width"]) <= lengths[:, None]).all()
    assert (draw["t_width"] <= 10).all() and (draw["f_width"] <= 5).all()
    assert ((draw["f_start"] + draw["f_width"]) <= 16).all()
    out = aug.apply_draw(x, draw, mask)
    torch.testing.assert_close(out, loop_apply(x, draw, mask, mask_value))
    # padding untouched
    assert torch.equal(out[~mask], x[~mask])


def test_forward_deterministic_and_changes_something():
    x = torch.randn(4, 100, 64)
    aug = SpecAugment(time_masks=2, time_width=20, freq_masks=2, freq_width=8).train()
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    c = aug(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    changed = (a != x)
    assert changed.any() and changed.float().mean() < 0.6
    # changed entries form whole rows/columns of the (T, F) plane: entries are 0 there
    assert (a[changed] == 0).all()


def test_eval_and_p0_are_identity():
    x = torch.randn(2, 30, 8)
    aug = SpecAugment(time_width=5, freq_width=2)
    assert aug.eval()(x) is x
    assert SpecAugment(p=0.0).train()(x) is x


def test_p_fraction_and_frame_embeddings():
    """p is a per-example probability; works on (B, T, D) embeddings with D large."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 12, 256, generator=g)
    aug = SpecAugment(time_masks=1, time_width=4, freq_masks=1, freq_width=64, p=0.5)
    out = aug(x, generator=g)
    touched = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.4 < touched < 0.6


def test_gradient_zero_on_masked_entries():
    x = torch.randn(2, 20, 10, requires_grad=True)
    aug = SpecAugment(time_masks=2, time_width=5, freq_masks=2, freq_width=3)
    out = aug(x, generator=torch.Generator().manual_seed(1))
    out.sum().backward()
    hit = (out != x).detach()
    assert (x.grad[hit] == 0).all() and (x.grad[~hit] == 1).all()


def test_errors():
    with pytest.raises(ValueError, match="Valid: zero, mean"):
        SpecAugment(mask_value="noise")
    with pytest.raises(ValueError, match="p must be"):
        SpecAugment(p=1.5)
    with pytest.raises(ValueError, match=">= 0"):
        SpecAugment(time_width=-1)
    aug = SpecAugment()
    with pytest.raises(ValueError, match=r"\(B, T, F\)"):
        aug(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="mask shape"):
        aug(torch.zeros(2, 5, 3), torch.ones(2, 4, dtype=torch.bool))
