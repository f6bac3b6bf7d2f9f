"""Benchmark: soundseek.metrics t2a + a2t at Clotho evaluation size.

    PYTHONPATH=src python benchmarks/bench_metrics.py --repeats 5

5225 captions x 1045 clips (5 captions per clip), random float32 scores. References
measured in the same run: a per-query loop (Mei et al.'s evaluation style: one stable
argsort per query) and the floor "one stable argsort of each matrix" (t2a and a2t
orientation), which any sort-based implementation must pay.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import median_time, print_table


def slow_loop(S: np.ndarray, ca: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t2a_rank = np.array([np.where(np.argsort(-S[i], kind="stable") == ca[i])[0][0] for i in range(S.shape[0])])
    St = S.T
    a2t_rank = []
    for clip in range(St.shape[0]):
        order = np.argsort(-St[clip], kind="stable")
        a2t_rank.append(min(np.where(order == k)[0][0] for k in np.where(ca == clip)[0]))
    return t2a_rank + 1, np.array(a2t_rank) + 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--clips", type=int, default=1045)
    ap.add_argument("--per-clip", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from soundseek.metrics import a2t, t2a

    rng = np.random.default_rng(0)
    ca = np.repeat(np.arange(args.clips), args.per_clip)
    S = rng.standard_normal((ca.size, args.clips)).astype(np.float32)  # (captions, clips)
    St = np.ascontiguousarray(S.T)

    def ours():
        return t2a(S, ca, return_ranks=True)[1], a2t(St, ca, return_ranks=True)[1]

    def floor():
        np.argsort(-S, axis=1, kind="stable")
        np.argsort(-St, axis=1, kind="stable")

    r_ours = ours()
    r_slow = slow_loop(S, ca)
    assert all(np.array_equal(x, y) for x, y in zip(r_ours, r_slow)), "ranks differ from the loop reference"
    t_ours = median_time(ours, args.repeats, warmup=1)
    t_floor = median_time(floor, args.repeats, warmup=1)
    t_slow = median_time(lambda: slow_loop(S, ca), max(1, args.repeats // 5), warmup=1)
    print_table([f"{ca.size} captions x {args.clips} clips", "median s", "ratio to ours"], [
        ("soundseek t2a + a2t", f"{t_ours:.4f}", "1.00"),
        ("floor: one stable argsort per matrix (numpy)", f"{t_floor:.4f}", f"{t_floor / t_ours:.2f}"),
        ("per-query loop reference", f"{t_slow:.4f}", f"{t_slow / t_ours:.2f}"),
    ])


if __name__ == "__main__":
    main()
