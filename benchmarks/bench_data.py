"""Data benchmarks: synthetic corpus generation and ``check_corpus`` probing.

Prints a markdown table: the figure, a reference measured in the same run, the ratio.

    PYTHONPATH=src python benchmarks/bench_data.py --clips 600 --repeats 3
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from _timing import median_time, print_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev")
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:
        pass
    from soundseek.data.check import check_corpus
    from soundseek.data.formats import load_corpus
    from soundseek.data.synthetic import make_synthetic_corpus

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        k = [0]

        def synth() -> None:
            k[0] += 1
            make_synthetic_corpus(Path(tmp) / f"s{k[0]}", n_clips=args.clips, seed=0)

        t_synth = median_time(synth, args.repeats)
        corpus = make_synthetic_corpus(Path(tmp) / "s1", n_clips=args.clips, seed=0)
        n_samples = sum(sf.info(str(c.audio)).frames for c in corpus)
        rng = np.random.default_rng(0)

        def ref() -> None:  # reference: write the same number of samples of noise as wav files
            k[0] += 1
            d = Path(tmp) / f"r{k[0]}"
            d.mkdir()
            per = n_samples // args.clips
            for i in range(args.clips):
                sf.write(str(d / f"{i}.wav"), (rng.standard_normal(per) * 0.1).astype(np.float32), 22050,
                         subtype="PCM_16")

        t_ref = median_time(ref, args.repeats)
        t_reuse = median_time(lambda: make_synthetic_corpus(Path(tmp) / "s1", n_clips=args.clips, seed=0),
                              args.repeats)
        rows.append((f"make_synthetic_corpus({args.clips}) fresh", t_synth, "write same samples of noise", t_ref))
        rows.append((f"make_synthetic_corpus({args.clips}) reuse", t_reuse, "fresh", t_synth))
    if (args.real / "manifest.jsonl").is_file():
        real = load_corpus(args.real / "manifest.jsonl")
        t_check = median_time(lambda: check_corpus(real, progress=False), args.repeats)
        t_read = median_time(lambda: [sf.read(str(c.audio)) for c in real], args.repeats)
        rows.append((f"check_corpus(real-sfx-dev, {len(real)} clips)", t_check, "decode every file (sf.read)", t_read))
    print_table(["task", "seconds", "reference", "ref seconds", "ratio"],
                ((name, f"{t:.3f}", rname, f"{r:.3f}", f"{t / r:.2f}") for name, t, rname, r in rows), align="lrlrr")


if __name__ == "__main__":
    main()
