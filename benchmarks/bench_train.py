"""Training-step speed on cached features vs the machine's matmul floor.

    python benchmarks/bench_train.py [--batch 128] [--frames 40] [--repeats 20]

One optimiser step (encode both sides, all-pairs scores, loss, backward, AdamW) of the
default model (global meanmax scorer, NT-Xent) and of TAP + PMR, on random features shaped
like aisfx frames (D=512) and MiniLM tokens (384). The floor is the step's dense FLOPs
(forward x3 for backward) at the fp32 matmul rate measured in the same run.
"""
from __future__ import annotations

import argparse

import torch
from _timing import matmul_rate, median_time, print_table

from soundseek.config import apply_overrides
from soundseek.models import create_model
from soundseek.train.config import Config


def step_time(sets: list[str], B: int, T: int, L: int, repeats: int, bf16: bool = False) -> float:
    cfg = apply_overrides(Config(), sets)
    model = create_model(cfg, audio_dim=512, text_dim=384, towers=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    frames, fmask = torch.randn(B, T, 512), torch.ones(B, T, dtype=torch.bool)
    tokens, tmask, sent = torch.randn(B, L, 384), torch.ones(B, L, dtype=torch.bool), torch.randn(B, 384)
    ids = torch.arange(B)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(model.encode_text(tokens, tmask, sent), model.encode_audio(frames, fmask), ids)
        opt.zero_grad()
        loss.float().backward()
        opt.step()

    return median_time(step, repeats, warmup=3)


def global_flops(B: int, T: int, d: int = 512) -> float:
    # audio MLP on pooled (1024 -> d -> d), text MLP (384 -> d -> d), scores B x B x d; x3 for backward
    fwd = 2 * B * (1024 * d + d * d) + 2 * B * (384 * d + d * d) + 2 * B * B * d
    return 3 * fwd


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    rate = matmul_rate()
    B, T, L = a.batch, a.frames, a.tokens
    rows = []
    g = step_time([], B, T, L, a.repeats)
    rows.append(("global meanmax + NT-Xent, fp32", g, global_flops(B, T) / rate))
    rows.append(("global meanmax + NT-Xent, bf16 autocast", step_time([], B, T, L, a.repeats, bf16=True), global_flops(B, T) / rate))
    tap = ["model.scorer=tap", "model.options={attn_dim: 512}", "loss.name=pmr", "loss.options={temperature: 0.05}"]
    rows.append(("TAP (Dp 512) + PMR, fp32", step_time(tap, B, T, L, a.repeats), float("nan")))
    gpa = ["model.scorer=gpa", "model.options={n_prototypes: 3}"]
    rows.append(("GPA (K=3, LASS) + NT-Xent, fp32", step_time(gpa, B, T, L, a.repeats), float("nan")))
    print(f"fp32 matmul rate: {rate / 1e9:.0f} GFLOP/s; batch {B}, {T} frames, {L} tokens, {a.threads} threads\n")
    print_table(["step", "median ms", "vs global fp32", "dense-FLOP floor ms", "ratio to floor"],
                [(name, f"{1e3 * t:.1f}", f"{t / g:.2f}", f"{1e3 * floor:.2f}" if floor == floor else "–",
                  f"{t / floor:.1f}" if floor == floor else "–") for name, t, floor in rows], compact=True)


if __name__ == "__main__":
    main()
