"""Benchmark: soundseek.ot.sinkhorn vs POT's ot.sinkhorn (numpy backend), fixed iterations.

    PYTHONPATH=src python benchmarks/bench_ot.py --repeats 5 [--threads 2]

Problems: uniform marginals, cost = Euclidean distance of random unit vectors divided by
its max (as m-LTM), reg 0.05, exactly ``--iters`` iterations (tol=0 / stopThr=0).
Prints a markdown table: median wall time, POT reference in the same run, ratio, and the
max abs difference of the plans.
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch


def cost(n: int, m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 64))
    y = rng.standard_normal((m, 64))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    C = np.sqrt(np.maximum(((x[:, None, :] - y[None]) ** 2).sum(-1), 0))
    return C / C.max()


def timeit(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--reg", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import ot

    from soundseek.ot import sinkhorn

    print(f"| problem | solver | median s ({args.iters} it) | POT s | ratio POT/ours | max abs diff vs POT |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, m in ((256, 256), (1045, 5225)):
        C = cost(n, m)
        a, b = np.full(n, 1 / n), np.full(m, 1 / m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_pot, P_pot = timeit(
                lambda: ot.sinkhorn(a, b, C, args.reg, numItermax=args.iters, stopThr=0.0), args.repeats
            )
        variants = [
            ("ours float64 auto", torch.float64, "auto"),
            ("ours float32 auto", torch.float32, "auto"),
            ("ours float64 log (logsumexp only)", torch.float64, "log"),
        ]
        print(f"| {n}x{m} | POT ot.sinkhorn float64 | {t_pot:.4f} | {t_pot:.4f} | 1.00 | 0 |")
        for name, dtype, method in variants:
            Ct = torch.tensor(C, dtype=dtype)
            fn = lambda: sinkhorn(None, None, Ct, args.reg, n_iter=args.iters, tol=0, warn=False, method=method)
            with torch.no_grad():
                t, P = timeit(fn, args.repeats if method == "auto" else max(1, args.repeats // 2))
            diff = float(np.abs(P.double().numpy() - P_pot).max())
            print(f"| {n}x{m} | {name} | {t:.4f} | {t_pot:.4f} | {t_pot / t:.2f} | {diff:.2e} |")


if __name__ == "__main__":
    main()
