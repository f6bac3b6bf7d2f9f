"""MahalanobisMetric (METHODS §6): full quadratic form, PSD projection, gradients."""
from __future__ import annotations

import pytest
import torch

from soundseek.scoring.mahalanobis import MahalanobisMetric


def random_metric(dim: int, parametrization: str, seed: int = 0) -> MahalanobisMetric:
    g = torch.Generator().manual_seed(seed)
    m = MahalanobisMetric(dim, parametrization=parametrization).double()
    with torch.no_grad():
        a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
        m.weight.copy_(a @ a.t() if parametrization == "full" else torch.tril(a))
    return m


def loop_distance(m: torch.Tensor, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    rows = []
    for i in range(x.shape[0]):
        row = []
        for j in range(y.shape[0]):
            diff = x[i] - y[j]
            row.append(torch.sqrt(torch.clamp(diff @ m @ diff, min=0) + eps))
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize("parametrization", ["full", "cholesky"])
def test_pairwise_distance_equals_per_pair_loop_forward_and_gradient(parametrization):
    metric = random_metric(5, parametrization)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    fast = metric.pairwise_distance(x, y)
    slow = loop_distance(metric.matrix(), x, y, metric.eps)
    assert fast.shape == (4, 3)
    assert torch.allclose(fast, slow, rtol=1e-10)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)
    g_fast = torch.autograd.grad((fast * w).sum(), (x, y, metric.weight))
    g_slow = torch.autograd.grad((slow * w).sum(), (x, y, metric.weight))
    for a, b in zip(g_fast, g_slow):
        assert torch.allclose(a, b, rtol=1e-8, atol=1e-10)
    assert torch.allclose(metric.paired_distance(x[:3], y), slow.diagonal(), rtol=1e-10)


def test_full_quadratic_form_not_diagonal():
    metric = MahalanobisMetric(2).double()
    with torch.no_grad():
        metric.weight.copy_(torch.tensor([[2.0, 1.0], [1.0, 2.0]]))
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    y = torch.zeros(1, 2, dtype=torch.float64)
    # (1, 1) M (1, 1)^T = 6 with the off-diagonal terms, 4 with diag(M) only
    assert metric.pairwise_distance(x, y).item() == pytest.approx(6**0.5)


def test_identity_init_is_euclidean():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    assert torch.allclose(MahalanobisMetric(3, eps=0.0).pairwise_distance(x, y), torch.cdist(x, y), atol=1e-5)


def test_project_makes_non_psd_psd_and_keeps_psd_unchanged():
    metric = MahalanobisMetric(4).double()
    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 4, generator=g, dtype=torch.float64)
    with torch.no_grad():
        metric.weight.copy_(a + a.t())  # indefinite
    assert torch.linalg.eigvalsh(metric.matrix()).min() < -0.1
    before = torch.linalg.eigh(metric.matrix().detach())
    metric.project_()
    after = metric.matrix().detach()
    evals = torch.linalg.eigvalsh(after)
    assert evals.min() >= -1e-12
    # the projection keeps the eigenvectors and the positive eigenvalues
    expected = (before.eigenvectors * before.eigenvalues.clamp(min=0)) @ before.eigenvectors.t()
    assert torch.allclose(after, expected, atol=1e-12)
    psd = random_metric(4, "full", seed=4)
    m0 = psd.matrix().detach().clone()
    psd.project_()
    assert torch.allclose(psd.matrix().detach(), m0, atol=1e-10)


def test_project_symmetrises_asymmetric_weight():
    metric = MahalanobisMetric(2).double()
    with torch.no_grad():
        metric.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, 1.0]]))
    metric.project_()
    assert torch.allclose(metric.weight, metric.weight.t())


def test_cholesky_is_always_psd():
    metric = MahalanobisMetric(4, parametrization="cholesky")
    with torch.no_grad():
        metric.weight.copy_(torch.randn(4, 4, generator=torch.Generator().manual_seed(5)))
    assert torch.linalg.eigvalsh(metric.matrix()).min() >= -1e-6
    metric.project_()
    assert torch.equal(metric.weight, torch.tril(metric.weight))


@pytest.mark.parametrize("parametrization", ["full", "cholesky"])
def test_nuclear_norm_is_trace_for_psd_and_has_gradient(parametrization):
    metric = random_metric(4, parametrization, seed=6)
    nn_ = metric.nuclear_norm()
    assert nn_.item() == pytest.approx(torch.trace(metric.matrix()).item(), rel=1e-10)
    assert nn_.item() == pytest.approx(torch.linalg.matrix_norm(metric.matrix().detach(), ord="nuc").item(), rel=1e-10)
    (g,) = torch.autograd.grad(nn_, metric.weight)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_gradients_flow_to_metric_and_inputs_at_zero_distance():
    metric = MahalanobisMetric(3)
    x = torch.ones(2, 3, requires_grad=True)
    d = metric.pairwise_distance(x, x.detach())  # includes x_i == y_i: eps keeps sqrt finite
    d.sum().backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(metric.weight.grad).all()


def test_mahalanobis_metric_learning_step_reduces_distance():
    metric = MahalanobisMetric(3)
    x = torch.tensor([[1.0, 0.0, 0.0]])
    y = torch.tensor([[0.0, 0.0, 0.0]])
    opt = torch.optim.SGD(metric.parameters(), lr=0.1)
    d0 = metric.pairwise_distance(x, y).item()
    for _ in range(5):
        opt.zero_grad()
        metric.pairwise_distance(x, y).sum().backward()
        opt.step()
        metric.project_()
    assert metric.pairwise_distance(x, y).item() < d0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dim": 0}, "dim must be a positive integer"),
        ({"dim": 3, "parametrization": "diag"}, "Valid: full, cholesky"),
        ({"dim": 3, "init": "zeros"}, "Valid: identity, random"),
    ],
)
def test_bad_options_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MahalanobisMetric(**kwargs)


def test_bad_shapes_raise():
    metric = MahalanobisMetric(3)
    with pytest.raises(ValueError, match=r"expected x \(n, 3\)"):
        metric.pairwise_distance(torch.zeros(2, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="both"):
        metric.paired_distance(torch.zeros(2, 3), torch.zeros(3, 3))
