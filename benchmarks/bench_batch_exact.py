"""Embedding throughput of the default pipeline with valid-length-exact batching (a clip's vector
independent of its batch) against the earlier batch-dependent aisfx encoder, in the same run.

"before" is the aisfx encoder module as it was at commit c82f493 (read with ``git show``,
loaded as a separate module, same packaged weights); "after" is the current one. Both run
inside ``Pipeline.embed_audio`` of the shipped default model (what ``soundseek index`` calls
per batch) on the same pre-decoded real-sfx-dev clips, in the same shuffled order (mixed
lengths: the padded case the exact computation handles). Before and after alternate batch by
batch (ABBA...) so that load from other processes hits both alike; medians are reported, with
the machine's fp32 GEMM rate and the CNN's FLOP floor measured in the same run.

    PYTHONPATH=src python benchmarks/bench_batch_exact.py --clips 32 --batch-size 8 --repeats 4
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _timing import load_average, matmul_rate, print_table
from bench_encoders import conv_linear_flops

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "real-sfx-dev"
REFERENCE_COMMIT = "c82f493"


def load_reference_encoder(commit: str):
    """The aisfx encoder class as of ``commit`` (its module source from git, loaded as
    ``aisfx_reference``; it imports today's shared helpers, whose old entry points are unchanged)."""
    try:
        src = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:src/soundseek/encoders/aisfx.py"],
                             check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        sys.exit(f"cannot read the reference encoder from git ({commit}): {e}; run inside a clone with history")
    spec = importlib.util.spec_from_loader("aisfx_reference", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec(compile(src, f"{commit}:aisfx.py", "exec"), mod.__dict__)
    return mod.AisfxEncoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32, help="random real-sfx-dev clips (seed 0)")
    ap.add_argument("--batch-size", type=int, default=8, help="clips per embed_audio call")
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(load_average())

    from soundseek.index.indexer import load_wave
    from soundseek.pipeline import Pipeline

    pipe = Pipeline.default()
    after = pipe.audio_encoder
    before = load_reference_encoder(REFERENCE_COMMIT).from_pretrained().eval()
    files = sorted(p for p in (DATA / "audio").rglob("*") if p.is_file())
    rng = np.random.default_rng(0)
    files = [files[i] for i in rng.permutation(len(files))[: args.clips]]
    max_len = int(pipe.max_seconds * pipe.sample_rate)
    waves = [load_wave(p, pipe.sample_rate)[0][:max_len] for p in files]
    seconds = sum(len(w) for w in waves) / pipe.sample_rate
    batches = [waves[s: s + args.batch_size] for s in range(0, len(waves), args.batch_size)]

    def run(enc) -> float:
        pipe.model.audio_encoder = enc
        t0 = time.perf_counter()
        for b in batches:
            pipe.embed_audio(b)
        return time.perf_counter() - t0

    def run_batch(enc, b) -> float:
        pipe.model.audio_encoder = enc
        t0 = time.perf_counter()
        pipe.embed_audio(b)
        return time.perf_counter() - t0

    # same vectors alone, different ones in batches: what the change is about
    one = [waves[int(np.argmin([len(w) for w in waves]))]]
    pipe.model.audio_encoder = before
    drift = float(np.abs(pipe.embed_audio(one)[0] - pipe.embed_audio(batches[0] + one)[0][-1:]).max())
    pipe.model.audio_encoder = after
    exact = float(np.abs(pipe.embed_audio(one)[0] - pipe.embed_audio(batches[0] + one)[0][-1:]).max())

    run_batch(after, batches[0]), run_batch(before, batches[0])  # warm-up
    # before and after alternate batch by batch (which goes first alternates too), so that a
    # change of load from other processes hits both alike; a pass = the sum over the batches
    times = {"before": [], "after": []}
    ratios = []
    for r in range(args.repeats):
        tot = {"before": 0.0, "after": 0.0}
        for j, b in enumerate(batches):
            names = ("before", "after") if (r + j) % 2 == 0 else ("after", "before")
            t = {name: run_batch(before if name == "before" else after, b) for name in names}
            ratios.append(t["before"] / t["after"])
            for name in names:
                tot[name] += t[name]
        for name in tot:
            times[name].append(tot[name])
    gf = matmul_rate(repeats=5, warmup=1) / 1e9
    flops = conv_linear_flops(after, lambda: run(after))
    floor = flops / (gf * 1e9)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    for name in ("before", "after"):
        rows.append((f"{name}: {'batch-dependent (' + REFERENCE_COMMIT + ')' if name == 'before' else 'valid-length exact'}",
                     f"{len(waves) / med[name]:.2f} clips/s", f"{med[name]:.2f} s",
                     " ".join(f"{t:.2f}" for t in times[name]), f"{med[name] / floor:.2f}x"))
    print(f"{len(waves)} real-sfx-dev clips ({seconds:.0f} s audio, shuffled, batches of {args.batch_size}), "
          f"Pipeline.default().embed_audio, {args.threads} threads; CNN floor {flops / 1e9:.0f} GFLOP at "
          f"{gf:.0f} GFLOP/s fp32 GEMM = {floor:.2f} s")
    print_table(["encoder", "throughput (median)", "median s", "all repeats s", "ratio to floor"], rows)
    print(f"\nafter / before throughput: {med['before'] / med['after']:.3f} (ratio of the median passes); "
          f"median over the {len(ratios)} batch pairs: {statistics.median(ratios):.3f} "
          f"(quartiles {np.percentile(ratios, 25):.3f} .. {np.percentile(ratios, 75):.3f})")
    print(f"shortest clip alone vs at the end of the first batch, max |diff| of the embedding: "
          f"before {drift:.3g}, after {exact:.3g}")


if __name__ == "__main__":
    main()
