"""Benchmark: forward + backward time of every registered loss on a (B, B) score matrix.

Reference measured in the same run, right after the loss: for m-LTM, the same loss computed
with POT (``ot.sinkhorn`` / ``ot.partial.entropic_partial_wasserstein``, torch backend,
kernel-space iterations, same iteration count, float64, autograd through the iterations); for
the other losses, NT-Xent (the usual baseline).

    PYTHONPATH=src python benchmarks/bench_losses.py --batch 64 128 --repeats 7
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import median_time

from soundseek.losses import LOSSES, build_loss


def make_step(loss_fn, scores: torch.Tensor, ids: torch.Tensor):
    def step() -> None:
        s = scores.detach().requires_grad_(True)
        loss_fn(s, ids).backward()

    return step


def pot_mltm_step(scores: torch.Tensor, reg: float, n_iter: int, mass: float | None = None):
    import ot

    def step() -> None:
        s = scores.detach().requires_grad_(True)
        c = torch.sqrt((2 - 2 * s).clamp(min=1e-8))
        c = c / c.max()
        w = torch.full((s.shape[0],), 1.0 / s.shape[0], dtype=s.dtype)
        if mass is None:
            plan = ot.sinkhorn(w, w, c, reg, numItermax=n_iter, stopThr=0.0, warn=False)
        else:
            plan = ot.partial.entropic_partial_wasserstein(w, w, c, reg, m=mass, numItermax=n_iter, stopThr=0.0)
        (-torch.log(plan.diagonal()).mean()).backward()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--n-iter", type=int, default=100, help="Sinkhorn iterations for m-LTM (tol=0: exactly n)")
    args = p.parse_args()
    torch.set_num_threads(2)
    print("| B | loss | ms (median) | reference | reference ms | ratio |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for b in args.batch:
        g = torch.Generator().manual_seed(0)
        t = F.normalize(torch.randn(b, 256, generator=g), dim=-1)
        a = F.normalize(t + torch.randn(b, 256, generator=g), dim=-1)
        scores = t @ a.t()  # (B, B) cosine
        ids = torch.arange(b) // 2
        for name in LOSSES.names():
            if name.startswith("mltm"):
                # float64 so that the solver's tol floor (100 eps) does not stop it early:
                # both sides then run exactly n_iter iterations
                opts = dict(reg=0.05, n_iter=args.n_iter, tol=0.0, warn=False)
                s64 = scores.double()
                mass = None if name == "mltm" else 0.95
                if mass is not None:
                    opts["mass"] = mass
                ms = median_time(make_step(build_loss(name, **opts), s64, ids), args.repeats, warmup=3)
                ref_name = "POT " + ("ot.sinkhorn" if mass is None else "entropic_partial_wasserstein")
                ref = median_time(pot_mltm_step(s64, 0.05, args.n_iter, mass), args.repeats, warmup=3)
            else:
                ms = median_time(make_step(build_loss(name), scores, ids), args.repeats, warmup=3)
                ref_name = "ntxent"
                ref = median_time(make_step(build_loss("ntxent"), scores, ids), args.repeats, warmup=3)
            print(f"| {b} | {name} | {ms * 1e3:.2f} | {ref_name} | {ref * 1e3:.2f} | {ms / ref:.2f} |")


if __name__ == "__main__":
    main()
