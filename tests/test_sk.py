"""Sinkhorn-Knopp A2T score correction (METHODS §5, GPA eq 10, Park et al.)."""
from __future__ import annotations

import pytest
import torch

from soundseek.scoring.sk import apply_bias, fold_bias_into_items, fold_query, sk_bias


def _naive_kernel_bias(scores, tau, n_iter):
    """Kernel-space Sinkhorn: K = exp(R'/tau), alternate row normalisation / column scaling v."""
    kmat = torch.exp(scores / tau)
    g, j = kmat.shape
    v = torch.ones(j, dtype=scores.dtype)
    for _ in range(n_iter):
        u = 1.0 / (kmat @ v)  # rows sum to one
        mass = v * (kmat.T @ u)
        v = v * (g / j) / mass
    beta = torch.log(v)
    return beta - beta.mean()


def test_columns_get_equal_mass_after_convergence():
    g = torch.Generator().manual_seed(0)
    r = torch.rand(120, 30, generator=g, dtype=torch.float64)
    beta, diag = sk_bias(r, tau=0.1, n_iter=2000, tol=1e-10, log=True)
    p = torch.softmax(r / 0.1 + beta, dim=1)
    assert torch.allclose(p.sum(0), torch.full((30,), 120 / 30, dtype=torch.float64), rtol=1e-8)
    assert torch.allclose(p.sum(1), torch.ones(120, dtype=torch.float64))
    assert diag["mass_error"] < 1e-8
    early = sk_bias(r, tau=0.1, n_iter=3)
    assert (torch.softmax(r / 0.1 + early, dim=1).sum(0) - 4).abs().max() > 1e-6  # not trivially true
    assert abs(beta.mean().item()) < 1e-12


@pytest.mark.parametrize("n_iter", [1, 10, 50])
def test_log_domain_agrees_with_kernel_space(n_iter):
    g = torch.Generator().manual_seed(1)
    r = torch.randn(60, 25, generator=g, dtype=torch.float64)
    assert torch.allclose(sk_bias(r, 0.5, n_iter), _naive_kernel_bias(r, 0.5, n_iter), atol=1e-10)


def test_small_tau_does_not_overflow():
    g = torch.Generator().manual_seed(2)
    r = torch.rand(200, 30, generator=g) * 2 - 1  # float32, R'/tau up to 100
    assert not torch.isfinite(torch.exp(r / 0.01)).all()  # the kernel-space version would overflow
    beta, diag = sk_bias(r, tau=0.01, n_iter=500, tol=1e-3, log=True)
    assert torch.isfinite(beta).all()
    p = torch.softmax(r / 0.01 + beta, dim=1)
    assert torch.isfinite(p).all()
    assert diag["mass_error"] < 1e-2


def test_improves_a2t_recall_with_hub_captions():
    g = torch.Generator().manual_seed(3)
    j, d, n_train = 200, 32, 2000
    caps = torch.nn.functional.normalize(torch.randn(j, d, generator=g), dim=1)
    hub_bonus = torch.zeros(j)
    hub_bonus[:8] = 0.35  # hub captions: high score for every audio

    def audio_near(c):
        return torch.nn.functional.normalize(c + 0.9 * torch.randn(c.shape, generator=g) / d**0.5, dim=1)

    test_audio = audio_near(caps)  # audio i <-> caption i
    train_caps = torch.nn.functional.normalize(torch.randn(n_train, d, generator=g), dim=1)
    train_audio = audio_near(train_caps)
    test_scores = test_audio @ caps.T + hub_bonus  # (n_audio, J)
    train_scores = train_audio @ caps.T + hub_bonus  # (G, J)
    tau = 0.05
    beta = sk_bias(train_scores, tau, n_iter=10)
    target = torch.arange(j)
    r1_raw = (test_scores.argmax(1) == target).float().mean().item()
    r1_sk = (apply_bias(test_scores, beta, tau).argmax(1) == target).float().mean().item()
    assert r1_sk > r1_raw + 0.05, (r1_raw, r1_sk)
    assert beta[:8].max() < beta[8:].min()  # hubs are pushed down


def test_folding_into_an_inner_product_index():
    g = torch.Generator().manual_seed(4)
    items = torch.nn.functional.normalize(torch.randn(50, 16, generator=g, dtype=torch.float64), dim=1)
    queries = torch.nn.functional.normalize(torch.randn(7, 16, generator=g, dtype=torch.float64), dim=1)
    beta = torch.randn(50, generator=g, dtype=torch.float64)
    tau = 0.07
    folded = fold_query(queries) @ fold_bias_into_items(items, beta, tau).T  # (7, 50)
    assert torch.allclose(folded, tau * apply_bias(queries @ items.T, beta, tau), atol=1e-12)
    assert fold_bias_into_items(items, beta, tau).shape == (50, 17)


def test_errors_and_tolerance_warning():
    r = torch.rand(5, 4)
    with pytest.raises(ValueError, match="tau must be a positive"):
        sk_bias(r, tau=0.0)
    with pytest.raises(ValueError, match=r"\(G, J\)"):
        sk_bias(r[0], tau=0.1)
    with pytest.raises(ValueError, match="NaN"):
        sk_bias(torch.full((3, 3), float("nan")), tau=0.1)
    with pytest.raises(ValueError, match=r"beta \(J,\)"):
        apply_bias(r, torch.zeros(5), 0.1)
    with pytest.warns(UserWarning, match="did not reach tol"):
        sk_bias(torch.rand(50, 20) * 5, tau=0.01, n_iter=2, tol=1e-12, log=True)
    beta, diag = sk_bias(torch.rand(50, 20, dtype=torch.float64), tau=1.0, n_iter=1000, tol=1e-9, log=True)
    assert diag["n_iter"] < 1000 and diag["mass_error"] < 1e-9
