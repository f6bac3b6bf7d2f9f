"""Pooling (METHODS §4): masked mean / max / meanmax / NetRVLAD against per-row loops."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soundseek.pooling import POOLING, NetRVLAD, build_pooling


def _batch(b=4, t=7, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, d, generator=g, dtype=torch.float64)
    lengths = torch.tensor([7, 3, 1, 0])[:b]
    mask = torch.arange(t)[None] < lengths[:, None]
    return x, mask, lengths


def _ref(name, x, lengths):
    rows = []
    for i, n in enumerate(lengths.tolist()):
        v = x[i, :n]
        if n == 0:
            rows.append(torch.zeros(x.shape[-1], dtype=x.dtype))
        elif name == "mean":
            rows.append(v.mean(0))
        elif name == "max":
            rows.append(v.max(0).values)
        else:
            rows.append(v.mean(0) + v.max(0).values)
    return torch.stack(rows)


@pytest.mark.parametrize("name", ["mean", "max", "meanmax"])
def test_basic_pooling_matches_loop_and_ignores_padding(name):
    x, mask, lengths = _batch()
    pool = build_pooling(name, 5)
    out = pool(x, mask)
    assert torch.allclose(out, _ref(name, x, lengths), atol=1e-12)
    # padding holding garbage (huge, NaN) changes nothing
    x2 = x.clone()
    x2[~mask] = float("nan")
    x2[1, 5] = 1e30
    assert torch.allclose(pool(x2, mask), out, atol=1e-12)
    assert pool.out_dim == 5


@pytest.mark.parametrize("name", ["mean", "max", "meanmax", "attention", "netrvlad"])
def test_padding_gets_no_gradient_and_empty_row_is_defined(name):
    x, mask, _ = _batch()
    x.requires_grad_(True)
    pool = build_pooling(name, 5).double()
    out = pool(x, mask)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    assert torch.all(x.grad[~mask] == 0)
    if name != "netrvlad":
        assert torch.all(out[3] == 0)  # all-masked row -> zeros


def test_no_mask_means_all_valid():
    x, _, _ = _batch()
    pool = build_pooling("mean", 5)
    assert torch.allclose(pool(x, None), x.mean(1))


def _netrvlad_ref(pool: NetRVLAD, x, lengths):
    out = []
    for i, n in enumerate(lengths.tolist()):
        v = x[i, :n]  # (n, D)
        desc = []
        for k in range(pool.n_clusters):
            acc = torch.zeros(x.shape[-1], dtype=x.dtype)
            for t in range(n):
                a = torch.softmax(pool.assign.weight @ v[t] + pool.assign.bias, dim=0)[k]
                acc = acc + a * v[t]
            desc.append(acc / max(acc.norm().item(), 1e-12) if acc.norm() > 0 else acc)
        flat = torch.cat(desc)
        flat = flat / flat.norm() if flat.norm() > 0 else flat
        out.append(pool.proj(flat) if pool.proj is not None else flat)
    return torch.stack(out)


@pytest.mark.parametrize("out_dim", [None, 6])
def test_netrvlad_matches_loop(out_dim):
    torch.manual_seed(0)
    x, mask, lengths = _batch()
    pool = NetRVLAD(5, n_clusters=3, out_dim=out_dim).double()
    out = pool(x, mask)
    assert out.shape == (4, out_dim or 15)
    assert torch.allclose(out, _netrvlad_ref(pool, x, lengths), atol=1e-10)
    if out_dim is None:
        assert torch.allclose(out[:3].norm(dim=-1), torch.ones(3, dtype=torch.float64))
        assert torch.all(out[3] == 0)


def test_registry_and_errors():
    assert POOLING.names() == ["attention", "max", "mean", "meanmax", "netrvlad"]
    with pytest.raises(KeyError, match="Valid: attention, max, mean, meanmax, netrvlad"):
        POOLING.get("avg")
    pool = build_pooling("mean", 5)
    with pytest.raises(ValueError, match="D=5"):
        pool(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 3\)"):
        pool(torch.zeros(2, 3, 5), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        pool(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="n_clusters"):
        NetRVLAD(5, n_clusters=0)


def test_netrvlad_trains():
    torch.manual_seed(0)
    x, mask, _ = _batch()
    pool = NetRVLAD(5, n_clusters=2, out_dim=3)
    loss = F.mse_loss(pool(x.float(), mask), torch.ones(4, 3))
    loss.backward()
    assert pool.assign.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("heads,residual", [(1, False), (3, True)])
def test_attention_pooling_matches_loop_and_ignores_padding(heads, residual):
    """Batched masked attention equals a per-row softmax over only that row's valid frames."""
    x, mask, lengths = _batch()
    pool = build_pooling("attention", 5, attn_dim=4, heads=heads, residual_mean=residual).double()
    out = pool(x, mask)
    for i, n in enumerate(lengths.tolist()):
        v = x[i, :n]
        if n == 0:
            assert torch.all(out[i] == 0)
            continue
        a = torch.softmax(pool.score(torch.tanh(pool.proj(v))), dim=0)  # (n, h)
        ref = (a.T @ v).mean(0) + (v.mean(0) if residual else 0)
        assert torch.allclose(out[i], ref, atol=1e-12)
    x2 = x.clone()
    x2[~mask] = float("nan")
    x2[1, 5] = 1e30
    assert torch.allclose(pool(x2, mask), out, atol=1e-12)
    w = pool.weights(x, mask)
    assert torch.allclose(w.sum(1)[lengths > 0], torch.ones(3, heads, dtype=w.dtype))
    assert pool.out_dim == 5
    with pytest.raises(ValueError, match="positive"):
        build_pooling("attention", 5, heads=0)
