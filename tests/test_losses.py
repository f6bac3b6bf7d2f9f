"""Triplet, NT-Xent, sigmoid and PMR losses vs slow loop references (METHODS §6)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from soundseek.config import ConfigError
from soundseek.losses import LOSSES, build_loss, loss_options, positive_mask
from soundseek.losses.ntxent import NTXentLoss
from soundseek.losses.pmr import PMRLoss
from soundseek.losses.sigmoid import SigmoidLoss
from soundseek.losses.triplet import TripletLoss

DUP_IDS = [3, 1, 3, 2, 1, 5, 3, 0]  # captions of clips 3 and 1 meet in the batch
UNIQUE_IDS = list(range(8))


def make_scores(seed: int = 0, b: int = 8, diag: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(b, b, generator=g, dtype=torch.float64) * 1.6 - 0.8 + diag * torch.eye(b, dtype=torch.float64)
    return s.clamp(-0.99, 0.99).requires_grad_(True)


def value_and_grad(fn, scores):
    out = fn(scores)
    (grad,) = torch.autograd.grad(out, scores)
    return out.detach(), grad


def assert_matches(fast, slow, scores, ids):
    ids_t = torch.tensor(ids)
    v1, g1 = value_and_grad(lambda s: fast(s, ids_t), scores)
    v2, g2 = value_and_grad(lambda s: slow(s, ids), scores)
    assert torch.allclose(v1, v2, rtol=1e-10, atol=1e-12), (v1, v2)
    assert torch.allclose(g1, g2, rtol=1e-8, atol=1e-10), (g1 - g2).abs().max()


# ---------------------------------------------------------------- slow references (loops)

def relu(x):
    return torch.clamp(x, min=0)


def ref_triplet(s, ids, margin=0.2, mode="sum", bidirectional=True):
    b = len(ids)
    total = s.new_zeros(())
    for direction in ((0, 1) if bidirectional else (0,)):
        for a in range(b):
            p = s[a, a]
            negs = [(s[a, j] if direction == 0 else s[j, a]) for j in range(b) if ids[j] != ids[a]]
            if mode == "sum":
                for n in negs:
                    total = total + relu(margin + n - p)
            elif mode == "max":
                if negs:
                    total = total + max((relu(margin + n - p) for n in negs), key=lambda t: t.detach().item())
            else:  # Mei et al.'s WeightTriplet, transcribed
                if not negs or p.item() >= 1 - 1e-5:
                    continue
                hard = [n for n in negs if n.item() + margin > p.item()]
                if not hard:
                    continue
                n = max(hard, key=lambda t: t.detach().item())
                total = total + relu(0.2 * p**2 - 0.7 * p + 0.5) + relu(0.9 * n**2 - 0.4 * n + 0.03)
    return total / b


def ref_ntxent(s, ids, tau=0.07, positives="paired"):
    b = len(ids)
    t2a = s.new_zeros(())
    a2t = s.new_zeros(())
    for i in range(b):
        if positives == "paired":
            keep = [j for j in range(b) if j == i or ids[j] != ids[i]]
            den_r = sum(torch.exp(s[i, j] / tau) for j in keep)
            den_c = sum(torch.exp(s[j, i] / tau) for j in keep)
            t2a = t2a - (s[i, i] / tau - torch.log(den_r))
            a2t = a2t - (s[i, i] / tau - torch.log(den_c))
        else:
            pos = [j for j in range(b) if ids[j] == ids[i]]
            den_r = sum(torch.exp(s[i, j] / tau) for j in range(b))
            den_c = sum(torch.exp(s[j, i] / tau) for j in range(b))
            t2a = t2a - sum(s[i, p] / tau - torch.log(den_r) for p in pos) / len(pos)
            a2t = a2t - sum(s[p, i] / tau - torch.log(den_c) for p in pos) / len(pos)
    return 0.5 * (t2a + a2t) / b


def ref_sigmoid(s, ids, t=10.0, bias=-10.0):
    b = len(ids)
    total = s.new_zeros(())
    for i in range(b):
        for j in range(b):
            z = 1.0 if ids[i] == ids[j] else -1.0
            total = total - torch.log(1.0 / (1.0 + torch.exp(-z * (t * s[i, j] + bias))))
    return total / b


def ref_pmr(s, ids, tau=0.07, omega=5.0):
    b = len(ids)
    e = [[torch.exp(omega * s[i, j]) for j in range(b)] for i in range(b)]
    pr_t2a = [[e[i][j] / sum(e[k][j] for k in range(b)) for j in range(b)] for i in range(b)]
    pr_a2t = [[e[i][j] / sum(e[i][k] for k in range(b)) for j in range(b)] for i in range(b)]
    l_t2a = s.new_zeros(())
    l_a2t = s.new_zeros(())
    for i in range(b):
        keep = [j for j in range(b) if j == i or ids[j] != ids[i]]
        r = [s[i, j] * pr_t2a[i][j] / tau for j in range(b)]
        l_t2a = l_t2a - (r[i] - torch.log(sum(torch.exp(r[j]) for j in keep)))
    for j in range(b):
        keep = [i for i in range(b) if i == j or ids[i] != ids[j]]
        r = [s[i, j] * pr_a2t[i][j] / tau for i in range(b)]
        l_a2t = l_a2t - (r[j] - torch.log(sum(torch.exp(r[i]) for i in keep)))
    return (l_t2a + l_a2t) / b


# ---------------------------------------------------------------- equality with the references

@pytest.mark.parametrize("ids", [UNIQUE_IDS, DUP_IDS], ids=["unique", "duplicates"])
@pytest.mark.parametrize("mode", ["sum", "max", "weighted"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_triplet_matches_loop_reference(ids, mode, bidirectional):
    s = make_scores(1)
    fast = TripletLoss(margin=0.2, mode=mode, bidirectional=bidirectional)
    assert_matches(fast, lambda x, i: ref_triplet(x, i, 0.2, mode, bidirectional), s, ids)


def test_triplet_weighted_skips_saturated_positive_and_inactive_anchors():
    s = torch.tensor([[1.0, 0.9], [0.1, 0.8]], dtype=torch.float64)
    # row 0: p = 1 (skipped); row 1: p = .8, negative .1 + .2 < .8 (inactive);
    # col 0: p = 1 (skipped); col 1: p = .8, negative .9 (active)
    loss = TripletLoss(mode="weighted")(s, torch.arange(2))
    expected = (0.5 - 0.7 * 0.8 + 0.2 * 0.64) + (0.03 - 0.4 * 0.9 + 0.9 * 0.81)
    assert math.isclose(loss.item(), expected / 2, rel_tol=1e-12)


@pytest.mark.parametrize("ids", [UNIQUE_IDS, DUP_IDS], ids=["unique", "duplicates"])
@pytest.mark.parametrize("positives", ["paired", "all"])
def test_ntxent_matches_loop_reference(ids, positives):
    s = make_scores(2)
    fast = NTXentLoss(temperature=0.07, positives=positives).double()
    assert_matches(fast, lambda x, i: ref_ntxent(x, i, 0.07, positives), s, ids)


@pytest.mark.parametrize("ids", [UNIQUE_IDS, DUP_IDS], ids=["unique", "duplicates"])
def test_sigmoid_matches_loop_reference(ids):
    s = make_scores(3)
    fast = SigmoidLoss(init_logit_scale=math.log(10.0), init_bias=-10.0).double()
    t, b = fast.scale().item(), fast.bias.item()
    assert t == pytest.approx(10.0) and b == -10.0
    assert_matches(fast, lambda x, i: ref_sigmoid(x, i, t, b), s, ids)


@pytest.mark.parametrize("ids", [UNIQUE_IDS, DUP_IDS], ids=["unique", "duplicates"])
@pytest.mark.parametrize("detach", [False, True])
def test_pmr_matches_loop_reference(ids, detach):
    s = make_scores(4)
    fast = PMRLoss(temperature=0.07, omega=5.0, detach_prior=detach)
    if detach:  # reference prior built from a detached copy
        def slow(x, i):
            b = len(i)
            e = torch.exp(5.0 * x.detach())
            pr_t2a, pr_a2t = e / e.sum(0, keepdim=True), e / e.sum(1, keepdim=True)
            total = x.new_zeros(())
            for r in range(b):
                keep = [j for j in range(b) if j == r or i[j] != i[r]]
                total = total - (x[r, r] * pr_t2a[r, r] / 0.07
                                 - torch.log(sum(torch.exp(x[r, j] * pr_t2a[r, j] / 0.07) for j in keep)))
                total = total - (x[r, r] * pr_a2t[r, r] / 0.07
                                 - torch.log(sum(torch.exp(x[j, r] * pr_a2t[j, r] / 0.07) for j in keep)))
            return total / b
    else:
        def slow(x, i):
            return ref_pmr(x, i, 0.07, 5.0)
    assert_matches(fast, slow, s, ids)


def test_pmr_priors_directions():
    s = make_scores(5).detach()
    pr_t2a, pr_a2t = PMRLoss(omega=3.0).priors(s)
    assert torch.allclose(pr_t2a.sum(0), torch.ones(8, dtype=s.dtype))  # over captions per clip
    assert torch.allclose(pr_a2t.sum(1), torch.ones(8, dtype=s.dtype))  # over clips per caption
    assert torch.allclose(pr_t2a[:, 2], torch.softmax(3.0 * s[:, 2], 0))


def test_pmr_default_omega_is_inverse_temperature():
    assert PMRLoss(temperature=0.05).omega == pytest.approx(20.0)


# ---------------------------------------------------------------- positive masking matters

@pytest.mark.parametrize("name", ["triplet_sum", "triplet_max", "triplet_weighted", "ntxent", "sigmoid", "pmr"])
def test_positive_mask_changes_the_value(name):
    s = make_scores(6).detach()
    s[0, 2] = s[2, 0] = s[1, 4] = 0.95  # same-clip pairs look like strong "negatives"
    loss = build_loss(name).double()
    with_dups = loss(s, torch.tensor(DUP_IDS))
    ignoring = loss(s, torch.tensor(UNIQUE_IDS))
    assert not torch.isclose(with_dups, ignoring), name


def test_ntxent_paired_removes_same_clip_columns_from_denominator():
    # two captions of one clip with identical scores: Mei's mask-after-diag keeps the duplicate
    # in the denominator (loss > log 1); ours removes it, so a perfect batch has ~0 loss
    s = torch.tensor([[1.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, 1.0]], dtype=torch.float64)
    ids = torch.tensor([0, 0, 1])
    ours = NTXentLoss(temperature=0.05).double()(s, ids)
    assert ours.item() < 1e-10
    mei_style = NTXentLoss(temperature=0.05).double()(s, torch.arange(3))
    assert mei_style.item() > 0.3


def test_positive_mask():
    m = positive_mask(torch.tensor([4, 7, 4]))
    assert m.tolist() == [[True, False, True], [False, True, False], [True, False, True]]


# ---------------------------------------------------------------- learnable parameters

def test_ntxent_learnable_scale_gets_gradient_and_is_capped():
    loss = NTXentLoss(temperature=0.07, learnable=True)
    s = make_scores(7).float().detach()
    loss(s, torch.arange(8)).backward()
    assert loss.logit_scale.grad is not None and loss.logit_scale.grad.abs().item() > 0
    assert loss.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        loss.logit_scale.fill_(10.0)
    assert loss.scale().item() == pytest.approx(100.0, rel=1e-5)
    fixed = NTXentLoss(temperature=0.07)
    assert list(fixed.parameters()) == [] and fixed.scale() == pytest.approx(1 / 0.07)


def test_sigmoid_learnable_parameters_get_gradients():
    loss = SigmoidLoss(init_logit_scale=1.0, init_bias=-10.0)
    s = make_scores(8).float().detach()
    loss(s, torch.tensor(DUP_IDS)).backward()
    assert loss.logit_scale.grad.abs().item() > 0 and loss.bias.grad.abs().item() > 0
    assert loss.scale().item() == pytest.approx(math.e)
    assert list(SigmoidLoss(learnable=False).parameters()) == []


# ---------------------------------------------------------------- options and inputs

@pytest.mark.parametrize(
    "factory, match",
    [
        (lambda: TripletLoss(mode="hardest"), "Valid: sum, max, weighted"),
        (lambda: TripletLoss(margin=-0.1), "margin"),
        (lambda: NTXentLoss(temperature=0.0), "temperature"),
        (lambda: NTXentLoss(positives="any"), "Valid: paired, all"),
        (lambda: NTXentLoss(temperature=0.001, learnable=True), "max_logit_scale"),
        (lambda: SigmoidLoss(init_bias=float("nan")), "init_bias"),
        (lambda: PMRLoss(omega=-1.0), "omega"),
        (lambda: PMRLoss(detach_prior="yes"), "detach_prior"),
    ],
)
def test_bad_options_raise(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_build_loss_validates_names_and_options():
    assert LOSSES.names() == ["mltm", "mltm_partial", "ntxent", "pmr", "sigmoid",
                              "triplet_max", "triplet_sum", "triplet_weighted"]
    assert build_loss("triplet_max", margin=0.1).mode == "max"
    with pytest.raises(KeyError, match="Valid: mltm, mltm_partial, ntxent"):
        build_loss("infonce")
    with pytest.raises(ConfigError, match="Valid: margin, bidirectional"):
        build_loss("triplet_sum", mode="max")
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        build_loss("ntxent", temperature=-1)
    assert "temperature" in loss_options("pmr")


@pytest.mark.parametrize("name", ["triplet_sum", "ntxent", "sigmoid", "pmr"])
def test_bad_inputs_raise(name):
    loss = build_loss(name)
    with pytest.raises(ValueError, match="square"):
        loss(torch.zeros(3, 4), torch.arange(3))
    with pytest.raises(ValueError, match="clip_ids must have shape"):
        loss(torch.zeros(3, 3), torch.arange(4))


# ---------------------------------------------------------------- optimisation smoke test

@pytest.mark.parametrize("name", ["triplet_sum", "triplet_max", "triplet_weighted", "ntxent", "sigmoid", "pmr"])
def test_loss_decreases_when_optimising_embeddings(name):
    g = torch.Generator().manual_seed(0)
    text = torch.randn(16, 8, generator=g).requires_grad_(True)
    audio = torch.randn(16, 8, generator=g).requires_grad_(True)
    ids = torch.tensor([i // 2 for i in range(16)])  # two captions per clip
    loss_fn = build_loss(name)
    opt = torch.optim.Adam([text, audio, *loss_fn.parameters()], lr=0.05)

    def step() -> torch.Tensor:
        scores = F.normalize(text, dim=-1) @ F.normalize(audio, dim=-1).t()
        return loss_fn(scores, ids)

    first = step().item()
    for _ in range(40):
        opt.zero_grad()
        loss = step()
        loss.backward()
        opt.step()
    assert step().item() < 0.7 * first, (name, first, step().item())
