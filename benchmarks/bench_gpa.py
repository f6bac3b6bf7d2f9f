"""Benchmark: GPA all-pairs scoring at Clotho evaluation size (METHODS §5).

Compares, in one run: a naive batched path (per caption, the (Ba, K+1, K+1) prototype
similarities by einsum and LASS in the pair-major layout of ``score_pairs``), the fast path
(``GPAScorer.score``: one prototype GEMM per caption chunk + LASS on planar (K+1, K+1, Bc, Ba)
arrays) and the matmul floor (the prototype GEMM (Bt*(K+1)) x (Ba*(K+1)) alone).

    PYTHONPATH=src python benchmarks/bench_gpa.py            # 5225 x 1045, K=3, d=1024
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import print_table, timed

from soundseek.scoring.gpa import GPAScorer, lass


def naive_scores(m: GPAScorer, text: dict, audio: dict, chunk: int) -> torch.Tensor:
    out = []
    for s in range(0, text["emb"].shape[0], chunk):
        pt = text["protos"][s : s + chunk]
        sp = torch.einsum("bid,cjd->cbij", audio["protos"], pt)  # (Bc, Ba, K+1, K+1)
        s_g = text["emb"][s : s + chunk] @ audio["emb"].T
        out.append(m.global_weight * s_g + lass(sp, m.l_a, m.l_t, m.aggregation))
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=int, default=5225)
    p.add_argument("--clips", type=int, default=1045)
    p.add_argument("--embed-dim", type=int, default=1024)
    p.add_argument("--prototypes", type=int, default=3)
    p.add_argument("--chunk", type=int, default=None)
    p.add_argument("--naive-chunk", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--skip-naive", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bt, ba, d, m1 = args.captions, args.clips, args.embed_dim, args.prototypes + 1
    m = GPAScorer(16, 16, d, n_prototypes=args.prototypes).eval()
    mb = GPAScorer(16, 16, d, n_prototypes=args.prototypes, matmul_dtype="bfloat16").eval()
    mb.load_state_dict(m.state_dict())

    def rep(n: int) -> dict:  # unit global embeddings and prototypes, as encode_* returns
        return {"emb": F.normalize(torch.randn(n, d), dim=-1), "protos": F.normalize(torch.randn(n, m1, d), dim=-1)}

    text, audio = rep(bt), rep(ba)
    with torch.no_grad():
        pa, pt = audio["protos"].reshape(ba * m1, d), text["protos"].reshape(bt * m1, d)
        t_floor, _ = timed(lambda: [pt[s : s + 1024] @ pa.T for s in range(0, bt * m1, 1024)], args.repeats)
        t_fast, s_fast = timed(lambda: m.score(text, audio, chunk=args.chunk), args.repeats)
        t_bf16, s_bf16 = timed(lambda: mb.score(text, audio, chunk=args.chunk), args.repeats)
        rows = []
        if not args.skip_naive:
            t_naive, s_naive = timed(lambda: naive_scores(m, text, audio, args.naive_chunk), 1)
            rows.append(("naive batched (einsum + pair-major LASS), 1 run", t_naive, (s_naive - s_fast).abs().max().item()))
        rows.append(("fast (GEMM + planar LASS), float32", t_fast, 0.0))
        rows.append(("fast, bfloat16 GEMM", t_bf16, (s_bf16 - s_fast).abs().max().item()))
    flops = 2 * bt * m1 * ba * m1 * d
    print(f"GPA all-pairs scoring: {bt} captions x {ba} clips, K+1={m1}, d={d}, threads={args.threads}, "
          f"median of {args.repeats}")
    print(f"floor: prototype GEMM, {flops / 1e9:.0f} GFLOP in {t_floor:.2f} s ({flops / t_floor / 1e9:.0f} GFLOP/s)\n")
    print_table(["method", "seconds", "x floor", "max abs diff vs fast fp32"],
                [(name, f"{sec:.2f}", f"{sec / t_floor:.2f}", f"{err:.2e}") for name, sec, err in rows]
                + [("floor (prototype GEMM only)", f"{t_floor:.2f}", "1.00", "")], align="lrrr")


if __name__ == "__main__":
    main()
