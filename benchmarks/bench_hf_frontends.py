"""Audio preprocessing of Hugging Face checkpoints: soundseek's torch re-implementations against
the transformers feature extractors they reproduce (numpy, clip by clip), and the floor.

    PYTHONPATH=src python benchmarks/bench_hf_frontends.py --clips 16 --repeats 5

Times are process CPU seconds (``time.process_time``, median of ``--repeats``) with one torch
thread, so that both sides do the same single-threaded work and the figures hold on a shared,
loaded machine; the GEMM rate of the floor is measured the same way in the same run.

CLAP: 10 s clips at 48 kHz through ``ClapAudioEncoder.clip_inputs`` (batched STFT, mel GEMM,
dB) vs ``ClapFeatureExtractor`` (``rand_trunc``, Slaney filters; and ``fusion``). AST: 10 s at
16 kHz through ``ASTEncoder.fbank`` vs ``ASTFeatureExtractor`` without torchaudio. The floor is
the mel projection GEMM plus an FFT estimate (5 N log2 N flops per frame) at the float32 matmul
rate measured in the same run (both front ends compute in float32; the extractors in float64).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
import time

from _timing import load_average, print_table
from _timing import matmul_rate as _matmul_rate
from _timing import median_time as _median_time


def median_time(fn, repeats: int, warmup: int = 1) -> float:
    """Median process CPU time (s) of ``repeats`` calls after ``warmup`` untimed calls."""
    return _median_time(fn, repeats, warmup, clock=time.process_time)


def matmul_rate(n: int = 1024, repeats: int = 5) -> float:
    return _matmul_rate(n, repeats, warmup=1, clock=time.process_time)


def clap_encoder(fusion: bool):
    from transformers import ClapAudioConfig, ClapFeatureExtractor
    from transformers.models.clap.modeling_clap import ClapAudioModel, ClapProjectionLayer

    from soundseek.models.clap import ClapAudioEncoder

    cfg = ClapAudioConfig(enable_fusion=fusion, depths=[1, 1], patch_embeds_hidden_size=8, hidden_size=16,
                          num_attention_heads=[2, 2])  # the front end does not depend on the model size
    fe = ClapFeatureExtractor(truncation="fusion" if fusion else "rand_trunc", frequency_min=50, frequency_max=14000)
    return ClapAudioEncoder(ClapAudioModel(cfg), ClapProjectionLayer(cfg), fe), fe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# HF audio front ends, {args.clips} clips x 10 s, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {load_average()}")
    rate = matmul_rate()
    g = np.random.default_rng(0)
    rows = []
    for fusion in (False, True):
        enc, fe = clap_encoder(fusion)
        waves = [(0.1 * g.standard_normal(480000)).astype(np.float32) for _ in range(args.clips)]
        tw = [torch.from_numpy(w) for w in waves]
        ours = median_time(lambda: [enc.clip_inputs(w) for w in tw], args.repeats, warmup=1)
        ref = median_time(lambda: fe(waves, sampling_rate=48000, return_tensors="np"), args.repeats)
        frames, n_fft = 1 + 480000 // 480, 1024
        flops = args.clips * frames * (5 * n_fft * math.log2(n_fft) + 2 * (n_fft // 2 + 1) * 64)
        floor = flops / rate
        name = f"CLAP {'fusion' if fusion else 'rand_trunc'} (48 kHz, 1024/480, 64 mels)"
        rows.append((name, f"{ours:.3f} s", f"{ref:.3f} s", f"{ref / ours:.1f}x faster", f"{floor:.3f} s",
                     f"{ours / floor:.1f}x floor"))
    from transformers import ASTFeatureExtractor

    from soundseek.encoders.hf_audio import ASTEncoder
    from transformers import ASTConfig, ASTModel

    fe = ASTFeatureExtractor()
    cfg = ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ast = ASTEncoder(ASTModel(cfg), fe)
    waves = [(0.1 * g.standard_normal(160000)).astype(np.float32) for _ in range(args.clips)]
    tw = [torch.from_numpy(w) for w in waves]
    ours = median_time(lambda: [ast._inputs(w) for w in tw], args.repeats, warmup=1)
    ref = median_time(lambda: fe(waves, sampling_rate=16000, return_tensors="np"), args.repeats)
    frames = 1 + (160000 - 400) // 160
    floor = args.clips * frames * (5 * 512 * 9 + 2 * 257 * 128) / rate
    rows.append(("AST fbank (16 kHz, 400/160, 128 mels)", f"{ours:.3f} s", f"{ref:.3f} s", f"{ref / ours:.1f}x faster",
                 f"{floor:.3f} s", f"{ours / floor:.1f}x floor"))
    print(f"float32 matmul rate (same run, CPU time): {rate / 1e9:.1f} GFLOP/s")
    print_table(["front end", "soundseek (torch), CPU s", "transformers extractor, CPU s", "ratio", "floor", "vs floor"], rows,
                align="lrrrrr")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    sys.exit(main())
