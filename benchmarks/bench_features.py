"""Audio front-end throughput: LogMel vs numpy reference vs floors; decode + resample.

Usage:
    PYTHONPATH=src python benchmarks/bench_features.py [--clips 64] [--seconds 10] [--repeats 5]
        [--gflops 340] [--data ../shared/data/real-sfx-dev]

Prints a markdown table: each figure, a reference measured in the same run, and the ratio.
Floors: ``torch.stft`` alone (plus |.|^2), and the mel matmul at the machine's peak fp32
rate (``--gflops``, ~340 GFLOP/s on the 2-core dev machine).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _timing import median_time, print_table

from soundseek.audio import LogMel, aisfx_logmel, audio_info, load_audio, mel_filterbank, panns_logmel


def numpy_logmel(x: np.ndarray, m: LogMel) -> np.ndarray:
    """Plain numpy reference (vectorised framing via strides + np.fft.rfft + filterbank + log)."""
    p = m.n_fft // 2
    x = np.pad(x, ((0, 0), (p, p)), mode="reflect" if m.pad_mode == "reflect" else "constant")
    frames = np.lib.stride_tricks.sliding_window_view(x, m.n_fft, axis=-1)[:, :: m.hop_length]  # (B, T, n_fft)
    win = np.zeros(m.n_fft, np.float32)
    left = (m.n_fft - m.win_length) // 2
    win[left:left + m.win_length] = np.hanning(m.win_length + 1)[:-1]
    spec = np.abs(np.fft.rfft(frames * win, axis=-1)) ** 2  # (B, T, F)
    fb = mel_filterbank(m.sample_rate, m.n_fft, m.n_mels, m.fmin, m.fmax, norm=m.mel_norm, htk=m.htk)
    mel = spec.astype(np.float32) @ fb.T
    return 10 * np.log10(np.maximum(mel, 1e-10))


def bench_logmel(name: str, m: LogMel, args, rows: list) -> None:
    n = int(args.seconds * m.sample_rate)
    g = torch.Generator().manual_seed(0)
    wave = torch.randn(args.clips, n, generator=g) * 0.1
    audio_s = args.clips * args.seconds
    with torch.inference_mode():
        t_ours = median_time(lambda: m(wave), args.repeats, warmup=1)
        padded = torch.nn.functional.pad(wave[:, None], (m.n_fft // 2,) * 2, mode=m.pad_mode)[:, 0]
        win = m.window

        def stft_only():
            s = torch.stft(padded, m.n_fft, m.hop_length, m.win_length, window=win, center=False,
                           return_complex=True)
            return torch.addcmul(s.real.square(), s.imag, s.imag)

        t_stft = median_time(stft_only, args.repeats, warmup=1)
    t_frames = m.num_frames(n)
    flops = 2.0 * args.clips * t_frames * (m.n_fft // 2 + 1) * m.n_mels
    t_mm_floor = flops / (args.gflops * 1e9)
    k = max(1, args.clips // 8)  # numpy reference on a subset, scaled
    x_np = wave[:k].numpy()
    t_np = median_time(lambda: numpy_logmel(x_np, m), max(1, args.repeats // 2)) * args.clips / k
    floor = t_stft + t_mm_floor
    rows.append((f"{name} LogMel, {args.clips} x {args.seconds:g} s (s)", t_ours, "numpy reference", t_np,
                 t_np / t_ours))
    rows.append((f"{name} LogMel (s)", t_ours, "floor: torch.stft + matmul at peak", floor, floor / t_ours))
    rows.append((f"{name} LogMel audio-seconds/s", audio_s / t_ours, "floor audio-seconds/s", audio_s / floor,
                 (audio_s / t_ours) / (audio_s / floor)))


def bench_decode(args, rows: list) -> None:
    audio = Path(args.data) / "audio"
    if not audio.is_dir():
        rows.append((f"decode + resample ({audio} absent)", float("nan"), "-", float("nan"), float("nan")))
        return
    files = sorted(p for p in audio.rglob("*") if p.is_file())
    dur = sum(audio_info(p).duration for p in files)

    def decode_resample():
        for p in files:
            load_audio(p, 32000)

    def decode_native():
        for p in files:
            load_audio(p, audio_info(p).sample_rate)

    reps = max(1, args.repeats // 2)
    t_rs = median_time(decode_resample, reps, warmup=1)
    t_nat = median_time(decode_native, reps, warmup=1)
    rows.append((f"decode + resample to 32 kHz, {len(files)} real clips ({dur:.0f} s audio), clips/s",
                 len(files) / t_rs, "decode only (native rate), clips/s", len(files) / t_nat, t_nat / t_rs))
    rows.append(("decode + resample, audio-seconds/s", dur / t_rs, "decode only, audio-seconds/s", dur / t_nat,
                 t_nat / t_rs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--gflops", type=float, default=340.0, help="machine peak fp32 GFLOP/s for the matmul floor")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows: list = []
    bench_logmel("PANNs (32 kHz, 1024/320, 64 mels)", panns_logmel(), args, rows)
    bench_logmel("aisfx (44.1 kHz, 2048/1024, 96 mels)", aisfx_logmel(), args, rows)
    bench_decode(args, rows)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {args.repeats} (median)\n")
    print_table(["figure", "value", "reference", "reference value", "ratio (ours is x better)"],
                [(fig, f"{v:.4g}", ref, f"{rv:.4g}", f"{ratio:.3g}") for fig, v, ref, rv, ratio in rows],
                align="lrlrr")


if __name__ == "__main__":
    main()
