"""Benchmark: TAP all-pairs scoring at Clotho evaluation size (METHODS §4).

Compares, in one run: the naive batched path (attention output A V W_O + LayerNorm for every
pair, chunked), the fast quadratic-form path (``TAPScorer.score``), and the matmul floor (the
Q K^T logits GEMM for all pairs, the FLOPs no exact method avoids, timed with torch.matmul).
The fast path needs a second GEMM of the same size (V u_t), so 2x floor is its ideal.

    PYTHONPATH=src python benchmarks/bench_tap.py            # 5225 x 1045, T=32, d=1024, Dp=512
    PYTHONPATH=src python benchmarks/bench_tap.py --captions 500 --clips 200 --repeats 1
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from _timing import print_table, timed

from soundseek.scoring.tap import TAPScorer, masked_softmax


def naive_scores(m: TAPScorer, text: dict, audio: dict, chunk: int) -> torch.Tensor:
    """All pairs, batched: h = A (V W_O) per pair (Bc, Ba, d), then LayerNorm and cosine."""
    k, mask = audio["K"], audio["mask"]
    vw = m.w_o(audio["V"])  # (Ba, T, d)
    out = []
    for s in range(0, text["q"].shape[0], chunk):
        q, z = text["q"][s : s + chunk], text["emb"][s : s + chunk]
        logits = torch.einsum("cp,btp->cbt", q, k) / math.sqrt(m.attn_dim)
        a = masked_softmax(logits, mask.unsqueeze(0), dim=-1)  # (Bc, Ba, T)
        h = torch.einsum("cbt,btd->cbd", a, vw)
        y = m.ln_out(h)
        out.append(torch.einsum("cd,cbd->cb", z, y) / y.norm(dim=-1).clamp_min(1e-12))
    return torch.cat(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captions", type=int, default=5225)
    p.add_argument("--clips", type=int, default=1045)
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--embed-dim", type=int, default=1024)
    p.add_argument("--attn-dim", type=int, default=512)
    p.add_argument("--audio-dim", type=int, default=512)
    p.add_argument("--text-dim", type=int, default=384)
    p.add_argument("--chunk", type=int, default=None, help="captions per chunk of the fast path")
    p.add_argument("--naive-chunk", type=int, default=32)
    p.add_argument("--naive-captions", type=int, default=1045,
                   help="time the naive path on this many captions and scale linearly to --captions")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    m = TAPScorer(args.audio_dim, args.text_dim, args.embed_dim, args.attn_dim).eval()
    variants = {}
    for dt in ("bfloat16-logits", "bfloat16"):
        variants[dt] = TAPScorer(args.audio_dim, args.text_dim, args.embed_dim, args.attn_dim, matmul_dtype=dt).eval()
        variants[dt].load_state_dict(m.state_dict())
    bt, ba, t = args.captions, args.clips, args.frames
    lengths = torch.randint(t // 2, t + 1, (ba,))
    mask = torch.arange(t)[None] < lengths[:, None]
    with torch.no_grad():
        t0 = time.perf_counter()
        audio = m.encode_audio(torch.randn(ba, t, args.audio_dim), mask)
        text = m.encode_text(None, None, torch.randn(bt, args.text_dim))
        t_enc = time.perf_counter() - t0

        k_flat = audio["K"].reshape(ba * t, -1)
        q = text["q"]
        t_floor, _ = timed(lambda: [k_flat @ q[s : s + 512].T for s in range(0, bt, 512)], args.repeats)
        t_fast, s_fast = timed(lambda: m.score(text, audio, chunk=args.chunk), args.repeats)
        rows, agree = [], {}
        if not args.skip_naive:
            nc = min(bt, args.naive_captions)
            sub = {k: v[:nc] for k, v in text.items()}
            t_naive, s_naive = timed(lambda: naive_scores(m, sub, audio, args.naive_chunk), 1)
            err = (s_naive - s_fast[:nc]).abs().max().item()
            rows.append((f"naive batched (A V W_O + LN per pair), {nc} captions x {bt / nc:.2f}", t_naive * bt / nc, err))
        rows.append(("fast (quadratic forms), float32", t_fast, 0.0))
        for dt, mv in variants.items():
            t_v, s_v = timed(lambda: mv.score(text, audio, chunk=args.chunk), args.repeats)
            rows.append((f"fast, {dt} GEMMs", t_v, (s_v - s_fast).abs().max().item()))
            agree[dt] = (s_v.argmax(1) == s_fast.argmax(1)).float().mean().item()

    flops = 2 * bt * ba * t * args.attn_dim
    print(f"TAP all-pairs scoring: {bt} captions x {ba} clips, T={t}, d={args.embed_dim}, "
          f"Dp={args.attn_dim}, threads={args.threads}, median of {args.repeats}")
    print(f"encode (heads, K, V, gram; not in the table): {t_enc:.2f} s")
    print(f"floor: Q K^T GEMM for all pairs, {flops / 1e9:.0f} GFLOP in {t_floor:.2f} s "
          f"({flops / t_floor / 1e9:.0f} GFLOP/s)\n")
    print_table(["method", "seconds", "x floor", "max abs diff vs fast fp32"],
                [(name, f"{sec:.2f}", f"{sec / t_floor:.2f}", f"{err:.2e}") for name, sec, err in rows]
                + [("floor (Q K^T GEMM only)", f"{t_floor:.2f}", "1.00", ""),
                   ("ideal fast fp32 = 2 GEMMs (Q K^T and V u_t)", f"{2 * t_floor:.2f}", "2.00", "")], align="lrrr")
    for dt, a in agree.items():
        print(f"\n{dt}: T2A top-1 agreement with fp32 = {a:.4f}", end="")
    print()


if __name__ == "__main__":
    main()
