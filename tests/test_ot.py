"""Tests of soundseek.ot: agreement with POT, plan properties, batching, gradients, stability."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from soundseek.ot import (
    ConvergenceWarning,
    partial_sinkhorn,
    partial_sinkhorn_log,
    plan_scores,
    sinkhorn,
    sinkhorn_log,
)

ot = pytest.importorskip("ot")
import ot.partial  # noqa: E402


def _problem(rng: np.random.Generator, n: int, m: int):
    a = rng.random(n) + 0.1
    b = rng.random(m) + 0.1
    C = rng.random((n, m))
    return a / a.sum(), b / b.sum(), C / C.max()


@pytest.mark.parametrize("method", ["auto", "log"])
@pytest.mark.parametrize("n,m", [(5, 7), (40, 23), (64, 80)])
@pytest.mark.parametrize("reg", [0.05, 0.2, 1.0])
def test_sinkhorn_matches_pot(method, n, m, reg):
    rng = np.random.default_rng(n * 1000 + m + int(reg * 100))
    a, b, C = _problem(rng, n, m)
    ref = ot.sinkhorn(a, b, C, reg, numItermax=100_000, stopThr=1e-14)
    P, info = sinkhorn(a, b, torch.tensor(C), reg, n_iter=100_000, tol=1e-13, log=True, method=method)
    assert info["converged"]
    assert np.abs(P.numpy() - ref).max() <= 1e-6 * ref.max()
    assert torch.allclose(P.sum(-1), torch.tensor(a), atol=1e-12)
    assert torch.allclose(P.sum(-2), torch.tensor(b), atol=1e-12)
    # potentials reproduce the plan
    logP = (info["f"][:, None] + info["g"][None, :] - torch.tensor(C)) / reg
    assert torch.allclose(logP.exp(), P, rtol=1e-10, atol=0)


def test_sinkhorn_small_reg_matches_pot_log_solver():
    rng = np.random.default_rng(1)
    a, b, C = _problem(rng, 30, 40)
    ref = ot.sinkhorn(a, b, C, 0.01, method="sinkhorn_log", numItermax=100_000, stopThr=1e-13)
    P = sinkhorn(a, b, torch.tensor(C), 0.01, n_iter=100_000, tol=1e-12)
    assert np.abs(P.numpy() - ref).max() <= 1e-6 * ref.max()


@pytest.mark.parametrize("method", ["auto", "log"])
@pytest.mark.parametrize("n,m,mass", [(6, 9, 0.5), (40, 30, 0.95), (32, 32, 0.3)])
@pytest.mark.parametrize("reg", [0.05, 0.3, 1.0])
def test_partial_matches_pot(method, n, m, mass, reg):
    rng = np.random.default_rng(7 * n + m)
    a, b, C = _problem(rng, n, m)
    b = b * 1.3  # unequal total masses are allowed for partial OT
    ref = ot.partial.entropic_partial_wasserstein(a, b, C, reg, m=mass, numItermax=5000)
    P, info = partial_sinkhorn(a, b, torch.tensor(C), reg, mass, n_iter=20_000, tol=1e-13, log=True, method=method)
    assert info["converged"]
    assert np.abs(P.numpy() - ref).max() <= 1e-6 * ref.max()
    assert abs(P.sum().item() - mass) < 1e-10
    assert (P.sum(-1).numpy() <= a + 1e-10).all()
    assert (P.sum(-2).numpy() <= b + 1e-10).all()


def test_partial_fixed_iterations_match_pot():
    rng = np.random.default_rng(3)
    a, b, C = _problem(rng, 12, 17)
    for iters in (1, 2, 5):
        ref = ot.partial.entropic_partial_wasserstein(a, b, C, 0.1, m=0.6, numItermax=iters)
        P = partial_sinkhorn(a, b, torch.tensor(C), 0.1, 0.6, n_iter=iters, tol=0, warn=False, method="log")
        assert np.abs(P.numpy() - ref).max() <= 1e-12


def test_partial_full_mass_equals_sinkhorn():
    rng = np.random.default_rng(4)
    a, b, C = _problem(rng, 10, 10)
    P = partial_sinkhorn(a, b, torch.tensor(C), 0.2, 1.0, n_iter=20_000, tol=1e-13)
    Q = sinkhorn(a, b, torch.tensor(C), 0.2, n_iter=20_000, tol=1e-13)
    assert torch.allclose(P, Q, atol=1e-9)


@pytest.mark.parametrize("solver", ["sinkhorn", "partial"])
def test_batched_equals_loop(solver):
    g = torch.Generator().manual_seed(0)
    C = torch.rand(3, 2, 8, 11, generator=g, dtype=torch.float64)
    a = torch.rand(3, 2, 8, generator=g, dtype=torch.float64) + 0.1
    a = a / a.sum(-1, keepdim=True)
    b = torch.full((11,), 1 / 11, dtype=torch.float64)

    def solve(aa, CC):
        if solver == "sinkhorn":
            return sinkhorn_log(aa, b, CC, 0.1, n_iter=3000, tol=1e-12)
        return partial_sinkhorn_log(aa, b, CC, 0.1, 0.8, n_iter=3000, tol=1e-12)

    batched = solve(a, C)
    assert batched.shape == (3, 2, 8, 11)
    for i in range(3):
        for j in range(2):
            assert torch.allclose(batched[i, j], solve(a[i, j], C[i, j]), atol=1e-9)


@pytest.mark.parametrize("method", ["auto", "log"])
def test_gradcheck_sinkhorn(method):
    g = torch.Generator().manual_seed(1)
    C = torch.rand(2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)

    def fn(c):  # fixed iteration count: the function is smooth in C
        return sinkhorn_log(a, None, c, 0.3, n_iter=30, tol=0, warn=False, method=method, check_every=7)

    assert torch.autograd.gradcheck(fn, (C,), eps=1e-6, atol=1e-5)


def test_gradcheck_partial():
    g = torch.Generator().manual_seed(2)
    C = torch.rand(4, 5, generator=g, dtype=torch.float64, requires_grad=True)

    def fn(c):
        return partial_sinkhorn_log(None, None, c, 0.3, 0.7, n_iter=25, tol=0, warn=False)

    assert torch.autograd.gradcheck(fn, (C,), eps=1e-6, atol=1e-5)


def test_kernel_and_log_paths_give_same_gradient():
    g = torch.Generator().manual_seed(3)
    C0 = torch.rand(16, 16, generator=g, dtype=torch.float64)
    grads = []
    for method in ("auto", "log"):
        C = C0.clone().requires_grad_(True)
        loss = -torch.diagonal(sinkhorn_log(None, None, C, 0.05, n_iter=200, tol=0, warn=False, method=method)).mean()
        loss.backward()
        grads.append(C.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-9)


def test_small_reg_where_kernel_sinkhorn_underflows():
    g = torch.Generator().manual_seed(5)
    C = torch.rand(20, 30, generator=g)  # float32, costs in [0, 1]
    C[3] = 0.9 + 0.1 * C[3]  # a row whose Gibbs kernel exp(-C/reg) underflows to 0 in float32
    reg = 0.005
    K = torch.exp(-C / reg)
    assert (K[3] == 0).all()
    u, v = torch.ones(20), torch.ones(30)
    for _ in range(50):  # textbook kernel-space Sinkhorn, written out here as the naive reference
        u = (1 / 20) / (K @ v)
        v = (1 / 30) / (K.T @ u)
    naive = u[:, None] * K * v[None, :]
    assert not torch.isfinite(naive).all()
    P, info = sinkhorn(None, None, C, reg, n_iter=20_000, tol=1e-5, log=True)
    assert info["converged"] and torch.isfinite(P).all()
    assert torch.allclose(P.sum(1), torch.full((20,), 1 / 20), atol=1e-5)
    P64 = sinkhorn(None, None, C.double(), reg, n_iter=20_000, tol=1e-12)
    assert (P.double() - P64).abs().max() < 1e-4
    P01 = sinkhorn(None, None, C, 0.01, n_iter=20_000, tol=1e-5)  # reg 0.01 in float32
    assert torch.allclose(P01.sum(0), torch.full((30,), 1 / 30), atol=1e-6)
    logQ = partial_sinkhorn_log(None, None, C, reg, 0.95, n_iter=20_000, tol=1e-5)
    assert torch.isfinite(logQ).all() and abs(logQ.exp().sum().item() - 0.95) < 1e-4


def test_convergence_warning_and_log_dict():
    C = torch.rand(10, 12, generator=torch.Generator().manual_seed(0))
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        _, info = sinkhorn(None, None, C, 0.05, n_iter=2, log=True)
    assert info["n_iter"] == 2 and info["converged"] is False and info["err"] > 0
    with pytest.warns(ConvergenceWarning):
        partial_sinkhorn(None, None, C, 0.05, 0.5, n_iter=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sinkhorn(None, None, C, 0.05, n_iter=2, warn=False)
        _, info = sinkhorn(None, None, C, 0.5, log=True)
    assert info["converged"] and info["n_iter"] < 1000 and set(info) >= {"f", "g", "err", "n_iter"}


def test_bad_inputs():
    C = torch.rand(4, 5)
    with pytest.raises(ValueError, match="reg must be a positive"):
        sinkhorn(None, None, C, -0.1)
    with pytest.raises(ValueError, match="mass must satisfy"):
        partial_sinkhorn(None, None, C, 0.1, 1.5)
    with pytest.raises(ValueError, match="mass must satisfy"):
        partial_sinkhorn(None, None, C, 0.1, 0.0)
    with pytest.raises(ValueError, match=r"a must have shape \(\.\.\., 4\)"):
        sinkhorn(torch.ones(5) / 5, None, C, 0.1)
    with pytest.raises(ValueError, match="same total mass"):
        sinkhorn(torch.ones(4), None, C, 0.1)
    with pytest.raises(ValueError, match="strictly positive"):
        sinkhorn(torch.tensor([0.5, 0.5, 0.0, 0.0]), None, C, 0.1)
    with pytest.raises(ValueError, match="Invalid method 'fast'. Valid: auto, log"):
        sinkhorn(None, None, C, 0.1, method="fast")
    with pytest.raises(ValueError, match="C must be finite"):
        sinkhorn(None, None, torch.tensor([[0.0, float("inf")]]), 0.1)
    with pytest.raises(ValueError, match="C contains NaN"):
        sinkhorn(None, None, torch.tensor([[0.0, float("nan")]]), 0.1)


def test_plan_scores_is_cost_plus_candidate_bias():
    g = torch.Generator().manual_seed(9)
    S = torch.rand(50, 10, generator=g, dtype=torch.float64)  # captions x clips similarities
    L = plan_scores(S, reg=0.03, kind="score", n_iter=10)
    C = (S.max() - S) / (S.max() - S).max()
    logP, info = sinkhorn_log(None, None, C, 0.03, n_iter=10, log=True, warn=False)
    assert torch.allclose(L, logP)
    biased = -C / 0.03 + info["g"][None, :] / 0.03  # same per-row ranking, per-candidate bias
    assert torch.equal(torch.argsort(L, dim=1, stable=True), torch.argsort(biased, dim=1, stable=True))
    with pytest.raises(ValueError, match="Invalid kind 'sim'. Valid: cost, score"):
        plan_scores(S, kind="sim")
