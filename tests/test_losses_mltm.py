"""m-LTM loss (METHODS §6) against POT's plans and a plain log-domain Sinkhorn reference."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soundseek.config import ConfigError
from soundseek.losses import build_loss
from soundseek.losses.mltm import MLTMLoss, ground_cost
from soundseek.ot import ConvergenceWarning, sinkhorn_log
from soundseek.scoring.mahalanobis import MahalanobisMetric

ot = pytest.importorskip("ot")  # POT

# every comparison below needs a converged solver: a ConvergenceWarning fails the test
pytestmark = pytest.mark.filterwarnings("error::UserWarning")

DUP_IDS = [0, 1, 0, 2, 3, 1]


def cosine_scores(seed: int = 0, b: int = 6, d: int = 5, align: float = 0.5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(b, d, generator=g, dtype=torch.float64)
    t = a * align + torch.randn(b, d, generator=g, dtype=torch.float64)
    return F.normalize(t, dim=-1) @ F.normalize(a, dim=-1).t()


def np_cost(scores: torch.Tensor) -> np.ndarray:
    c = np.sqrt(np.maximum(2 - 2 * scores.detach().numpy(), 1e-8))
    return c / c.max()


def ref_log_sinkhorn(c: torch.Tensor, reg: float, n_iter: int = 3000) -> torch.Tensor:
    """Plain log-domain Sinkhorn with uniform marginals (the obvious version)."""
    b = c.shape[0]
    log_w = torch.full((b,), -math.log(b), dtype=c.dtype)
    f = torch.zeros(b, dtype=c.dtype)
    g = torch.zeros(b, dtype=c.dtype)
    for _ in range(n_iter):
        f = reg * (log_w - torch.logsumexp((g[None, :] - c) / reg, dim=1))
        g = reg * (log_w - torch.logsumexp((f[:, None] - c) / reg, dim=0))
    return (f[:, None] + g[None, :] - c) / reg


def ref_mltm(scores: torch.Tensor, ids: list[int], reg: float) -> torch.Tensor:
    c = torch.sqrt((2 - 2 * scores).clamp(min=1e-8))
    log_pi = ref_log_sinkhorn(c / c.max(), reg)
    b = len(ids)
    pairs = [(i, j) for i in range(b) for j in range(b) if ids[i] == ids[j]]
    return -sum(log_pi[i, j] for i, j in pairs) / len(pairs)


def exact(reg=0.05, **kw) -> MLTMLoss:
    return MLTMLoss(reg=reg, n_iter=20000, tol=1e-13, **kw)


def test_plan_matches_pot_sinkhorn_and_loss_is_minus_mean_log_diag():
    s = cosine_scores(0)
    loss = exact(reg=0.05)
    c = np_cost(s)
    b = c.shape[0]
    w = np.full(b, 1.0 / b)
    pot_plan = ot.sinkhorn(w, w, c, reg=0.05, numItermax=100000, stopThr=1e-14)
    assert np.allclose(loss.plan(s).numpy(), pot_plan, rtol=1e-7, atol=1e-12)
    assert np.allclose(loss.cost(s).numpy(), c, atol=1e-12)
    expected = -np.mean(np.log(np.diag(pot_plan)))
    assert math.isclose(loss(s, torch.arange(b)).item(), expected, rel_tol=1e-8)


def test_partial_plan_matches_pot_entropic_partial_wasserstein():
    s = cosine_scores(1)
    loss = exact(reg=0.05, mass=0.95)
    c = np_cost(s)
    b = c.shape[0]
    w = np.full(b, 1.0 / b)
    pot_plan = ot.partial.entropic_partial_wasserstein(w, w, c, reg=0.05, m=0.95, numItermax=100000, stopThr=1e-15)
    ours = loss.plan(s).numpy()
    assert math.isclose(ours.sum(), 0.95, rel_tol=1e-9)
    assert np.allclose(ours, pot_plan, rtol=1e-6, atol=1e-10)
    expected = -np.mean(np.log(np.diag(pot_plan)))
    assert math.isclose(loss(s, torch.arange(b)).item(), expected, rel_tol=1e-6)
    assert build_loss("mltm_partial").mass == 0.95


@pytest.mark.parametrize("ids", [list(range(6)), DUP_IDS], ids=["unique", "duplicates"])
def test_value_and_gradient_match_plain_reference(ids):
    s = cosine_scores(2).requires_grad_(True)
    loss = exact(reg=0.1)
    v1 = loss(s, torch.tensor(ids))
    (g1,) = torch.autograd.grad(v1, s)
    v2 = ref_mltm(s, ids, 0.1)
    (g2,) = torch.autograd.grad(v2, s)
    assert torch.allclose(v1, v2, rtol=1e-9), (v1, v2)
    assert torch.allclose(g1, g2, rtol=1e-6, atol=1e-8), (g1 - g2).abs().max()


def test_gradient_matches_finite_differences():
    s = cosine_scores(3, b=4).requires_grad_(True)
    loss = exact(reg=0.1)
    assert torch.autograd.gradcheck(lambda x: loss(x, torch.arange(4)), (s,), eps=1e-6, atol=1e-5)


def test_duplicates_use_pi_hat_over_positive_mask():
    s = cosine_scores(4)
    b = s.shape[0]
    c = np_cost(s)
    w = np.full(b, 1.0 / b)
    log_plan = np.log(ot.sinkhorn(w, w, c, reg=0.05, numItermax=100000, stopThr=1e-14))
    p = np.array(DUP_IDS)[:, None] == np.array(DUP_IDS)[None, :]
    expected = -(log_plan * p).sum() / p.sum()
    loss = exact(reg=0.05)
    with_dups = loss(s, torch.tensor(DUP_IDS)).item()
    assert math.isclose(with_dups, expected, rel_tol=1e-8)
    assert not math.isclose(with_dups, loss(s, torch.arange(b)).item(), rel_tol=1e-3)


def test_euclidean_ground_is_distance_of_unit_vectors():
    g = torch.Generator().manual_seed(5)
    t = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=-1)
    a = F.normalize(torch.randn(5, 4, generator=g, dtype=torch.float64), dim=-1)
    assert torch.allclose(ground_cost(t @ a.t(), "euclidean"), torch.cdist(t, a), atol=1e-7)
    assert torch.equal(ground_cost(-torch.cdist(t, a), "distance"), torch.cdist(t, a))


def test_distance_ground_with_mahalanobis_matches_pot_and_is_scale_invariant():
    g = torch.Generator().manual_seed(6)
    t = torch.randn(6, 4, generator=g, dtype=torch.float64)
    a = t + 0.5 * torch.randn(6, 4, generator=g, dtype=torch.float64)
    metric = MahalanobisMetric(4, init="random").double()
    scores = -metric.pairwise_distance(t, a)
    loss = exact(reg=0.1, ground="distance")
    c = (-scores).detach().numpy()
    c = c / c.max()
    w = np.full(6, 1 / 6)
    expected = -np.mean(np.log(np.diag(ot.sinkhorn(w, w, c, 0.1, numItermax=100000, stopThr=1e-14))))
    assert math.isclose(loss(scores, torch.arange(6)).item(), expected, rel_tol=1e-8)
    # normalising by the batch max makes the loss invariant to a global scale of the cost
    assert math.isclose(loss(3 * scores, torch.arange(6)).item(), expected, rel_tol=1e-8)


def test_no_log_of_underflowed_plan():
    s = torch.full((4, 4), 0.9, dtype=torch.float64)
    s.fill_diagonal_(-1.0)  # diagonal costs are the largest: pi[i, i] ~ exp(-1/reg) underflows
    s.requires_grad_(True)
    loss = MLTMLoss(reg=1e-3, n_iter=2000, tol=1e-10)
    assert loss.plan(s).diagonal().max().item() == 0.0  # the plan itself underflows ...
    value = loss(s, torch.arange(4))
    (grad,) = torch.autograd.grad(value, s)
    assert math.isfinite(value.item()) and value.item() > 100  # ... the loss does not
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ground": "cosine"}, "Valid: euclidean, distance"),
        ({"mass": 1.5}, r"mass must be in \(0, 1\]"),
        ({"mass": 0.0}, "mass must be > 0"),
        ({"reg": 0}, "reg must be > 0"),
        ({"n_iter": 0}, "n_iter must be a positive integer"),
        ({"normalize_cost": "yes"}, "normalize_cost must be True or False"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLTMLoss(**kwargs)


def test_build_and_bad_inputs():
    with pytest.raises(ConfigError, match="Valid: reg, ground, mass"):
        build_loss("mltm", epsilon=0.05)
    with pytest.raises(ValueError, match="square"):
        MLTMLoss()(torch.zeros(2, 3), torch.arange(2))


@pytest.mark.parametrize("variant", ["euclidean", "euclidean_partial", "mahalanobis"])
def test_loss_decreases_when_optimising_embeddings(variant):
    g = torch.Generator().manual_seed(0)
    text = torch.randn(16, 8, generator=g).requires_grad_(True)
    audio = torch.randn(16, 8, generator=g).requires_grad_(True)
    ids = torch.tensor([i // 2 for i in range(16)])
    metric = MahalanobisMetric(8) if variant == "mahalanobis" else None
    loss_fn = MLTMLoss(reg=0.05, ground="distance" if metric else "euclidean",
                       mass=0.95 if variant.endswith("partial") else None, n_iter=50, warn=False)
    params = [text, audio] + (list(metric.parameters()) if metric else [])
    opt = torch.optim.Adam(params, lr=0.05)

    def step() -> torch.Tensor:
        if metric is not None:
            scores = -metric.pairwise_distance(text, audio)
        else:
            scores = F.normalize(text, dim=-1) @ F.normalize(audio, dim=-1).t()
        return loss_fn(scores, ids)

    first = step().item()
    for _ in range(30):
        opt.zero_grad()
        loss = step()
        loss.backward()
        opt.step()
        if metric is not None:
            metric.project_()
    last = step().item()
    assert last < first - 0.3, (variant, first, last)
    if metric is not None:
        assert torch.linalg.eigvalsh(metric.matrix().detach()).min() >= -1e-6


def test_non_convergence_is_reported_once_per_loss_and_counted():
    """A training run calls the loss once per batch: an unconverged plan is one warning for
    the run (not one per step), every such batch is counted, and the plan is the solver's."""
    torch.manual_seed(0)
    scores = torch.randn(6, 6).clamp(-1, 1)
    loss = MLTMLoss(reg=0.01, n_iter=1, tol=0.0)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            loss(scores, torch.arange(6))
    conv = [w for w in seen if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1
    assert loss.n_unconverged == 3
    ref = sinkhorn_log(None, None, loss.cost(scores), 0.01, n_iter=1, tol=0.0, warn=False)
    torch.testing.assert_close(loss.log_plan(scores), ref)
    quiet = MLTMLoss(reg=0.01, n_iter=1, tol=0.0, warn=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet(scores, torch.arange(6))
    assert not [w for w in seen if issubclass(w.category, ConvergenceWarning)]
    assert quiet.n_unconverged == 1
