"""bf16 autocast vs fp32 (train.precision): training step time (global, TAP), held-out metrics of
a short run on class-structured cached-size features, and TAP all-pairs scoring time.

    PYTHONPATH=src python benchmarks/bench_precision.py --batch 128 --steps 8 --repeats 3 --epochs 6
"""
from __future__ import annotations

import argparse
import statistics
import tempfile

import torch
from _timing import load_average, median_time
from bench_distributed import bench_config, toy_data, train_steps_time


def step_time(data, scorer: str, precision: str, batch: int, steps: int) -> float:
    from soundseek.train.loop import Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(bench_config(out, scorer, batch, precision), data)
        trainer.model.train()
        return train_steps_time(trainer, batch, steps) / steps


def short_run(data, scorer: str, precision: str, batch: int, epochs: int) -> dict:
    from soundseek.train.evaluate import evaluate
    from soundseek.train.loop import Trainer

    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(bench_config(out, scorer, batch, precision, (f"train.epochs={epochs}", "optim.lr=1e-3")), data)
        trainer.fit(resume=False)
        return evaluate(trainer.model, data, "test")


def tap_scoring_time(data, mode: str, repeats: int) -> float:
    """All-pairs TAP scores of the test split (captions x clips), eval mode, no grad."""
    from soundseek.train.evaluate import encode_view
    from soundseek.train.loop import Trainer

    with tempfile.TemporaryDirectory() as out:
        extra = ("model.options={attn_dim: 256, matmul_dtype: bfloat16}",) if mode == "tap matmul_dtype=bfloat16" else ()
        model = Trainer(bench_config(out, "tap", 64, "fp32", extra), data).model.eval()
    text, audio = encode_view(model, data, data.view("test"))

    def score() -> None:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast bf16"):
            model.score(text, audio)

    return median_time(score, repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=6, help="epochs of the short held-out run")
    ap.add_argument("--clips", type=int, default=600)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--noise", type=float, default=8.0, help="feature noise of the toy corpus (task difficulty)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = toy_data(n_clips=args.clips, audio_noise=args.noise, text_noise=args.noise)  # hard enough to not saturate
    print(f"{load_average()}; {args.threads} threads; "
          f"test split {data.view('test').n_captions} captions x {data.view('test').n_clips} clips\n")
    print("| scorer | train step fp32 (s) | train step bf16 (s) | speed-up | test T2A R1 fp32 | bf16 | test T2A mAP10 fp32 | bf16 |")
    print("|---|---|---|---|---|---|---|---|")
    for scorer in ("global", "tap"):
        t = {p: statistics.median(step_time(data, scorer, p, args.batch, args.steps) for _ in range(args.repeats))
             for p in ("fp32", "bf16")}
        m = {p: short_run(data, scorer, p, args.batch, args.epochs) for p in ("fp32", "bf16")}
        print(f"| {scorer} | {t['fp32']:.3f} | {t['bf16']:.3f} | {t['fp32'] / t['bf16']:.2f} | "
              f"{100 * m['fp32']['t2a']['R1']:.1f} | {100 * m['bf16']['t2a']['R1']:.1f} | "
              f"{100 * m['fp32']['t2a']['mAP10']:.1f} | {100 * m['bf16']['t2a']['mAP10']:.1f} |")
    print("\n| TAP all-pairs scoring (test split) | seconds | reference fp32 | ratio |")
    print("|---|---|---|---|")
    ref = tap_scoring_time(data, "fp32", args.repeats)
    for mode in ("fp32", "autocast bf16", "tap matmul_dtype=bfloat16"):
        v = ref if mode == "fp32" else tap_scoring_time(data, mode, args.repeats)
        print(f"| {mode} | {v:.3f} | {ref:.3f} | {ref / v:.2f}x faster |")


if __name__ == "__main__":
    main()
