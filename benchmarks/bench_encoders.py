"""Encoder throughput: aisfx feature extraction (decode + log-mel + CNN) in fp32 and bf16
autocast, against a floor = the CNN's conv FLOPs at the matmul rate measured in the same run,
and MiniLM caption encoding against the same kind of floor.

    PYTHONPATH=src python benchmarks/bench_encoders.py --clips 32 --repeats 3
"""
from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import numpy as np
import torch
from _timing import matmul_rate, median_time, print_table
from torch import nn

from soundseek.audio.io import batch_waves, load_audio
from soundseek.encoders.aisfx import AisfxEncoder
from soundseek.encoders.text import HFTextEncoder

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"


def matmul_gflops() -> float:
    """fp32 1024 x 1024 matmul rate in GFLOP/s (median of 5 after one warm-up)."""
    return matmul_rate(repeats=5, warmup=1) / 1e9


def conv_linear_flops(model: nn.Module, run) -> float:
    """FLOPs (2 x MACs) of every Conv2d / Linear during ``run()``, via forward hooks."""
    total = [0.0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * mod.in_channels // mod.groups
            total[0] += 2.0 * out.numel() * k
        else:
            total[0] += 2.0 * out.numel() * mod.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hs:
            h.remove()
    return total[0]


def audio_paths(n: int) -> list[Path]:
    if not DATA.is_dir():
        return []
    files = sorted(p for p in (DATA / "audio").rglob("*") if p.is_file())
    return files[:n]


def bench_aisfx(args) -> list[tuple]:
    enc = AisfxEncoder.from_pretrained()
    paths = audio_paths(args.clips)
    rng = np.random.default_rng(0)
    source = f"{len(paths)} real-sfx-dev clips" if paths else f"{args.clips} synthetic 5 s clips"

    def decode():
        if paths:
            return [load_audio(p, 44100, max_seconds=args.max_seconds) for p in paths]
        return [rng.standard_normal(44100 * 5).astype(np.float32) * 0.1 for _ in range(args.clips)]

    waves = decode()
    seconds = sum(len(w) for w in waves) / 44100

    def encode(ws, bf16: bool):
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        order = np.argsort([len(w) for w in ws])
        with torch.no_grad(), ctx:
            for s in range(0, len(ws), args.batch_size):
                wave, mask = batch_waves([ws[i] for i in order[s: s + args.batch_size]])
                enc(wave, mask)

    flops = conv_linear_flops(enc, lambda: encode(waves, False))
    rows = []
    gf = matmul_gflops()
    for label, bf16, with_decode in (("fp32, decode+mel+CNN", False, True), ("fp32, mel+CNN", False, False),
                                     ("bf16 autocast, mel+CNN", True, False)):
        med = median_time(lambda: encode(decode() if with_decode else waves, bf16), args.repeats)
        floor = flops / (gf * 1e9)
        rows.append((f"aisfx {label} ({source}, {seconds:.0f} s audio)", f"{len(waves) / med:.1f} clips/s",
                     f"floor {floor:.2f} s ({flops / 1e9:.1f} GFLOP at {gf:.0f} GFLOP/s fp32 mm)",
                     f"{med / floor:.2f}x floor ({med:.2f} s)"))
    return rows


def bench_text(args) -> list[tuple]:
    enc = HFTextEncoder.from_pretrained()
    words = "a dog barks while rain falls on a metal roof and cars pass by in the distance".split()
    rng = np.random.default_rng(0)
    caps = [" ".join(rng.choice(words, size=rng.integers(6, 20))) for _ in range(args.captions)]
    n_params = sum(p.numel() for n, p in enc.model.named_parameters() if "embeddings" not in n)
    n_tokens = int(enc.tokenize(caps)["attention_mask"].sum())
    gf = matmul_gflops()

    def encode() -> None:
        with torch.no_grad():
            for s in range(0, len(caps), 64):
                enc(caps[s: s + 64])

    med = median_time(encode, args.repeats)
    floor = 2.0 * n_params * n_tokens / (gf * 1e9)
    return [(f"MiniLM-L6 text ({len(caps)} captions, {n_tokens} tokens)", f"{len(caps) / med:.0f} captions/s",
             f"floor {floor:.3f} s (2 x {n_params / 1e6:.1f} M params x tokens at {gf:.0f} GFLOP/s)",
             f"{med / floor:.2f}x floor ({med:.3f} s)")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--max-seconds", type=float, default=10.0)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--captions", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = bench_aisfx(args) + bench_text(args)
    print_table(["what", "throughput", "reference (same run)", "ratio"], rows)


if __name__ == "__main__":
    main()
