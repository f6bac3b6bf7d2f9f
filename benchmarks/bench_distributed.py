"""Trainer steps/s with 1 process vs N gloo processes on cached-size features (issue 5).

Same global batch in every configuration; compares P processes x T threads against the
1-process run with all P*T threads (the fair reference on a P*T-core machine) and 1 x 1.

    PYTHONPATH=src python benchmarks/bench_distributed.py --batch 128 --steps 10 --repeats 3
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.multiprocessing as mp
from _timing import load_average, print_table

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def toy_data(n_clips: int = 600, caps: int = 5, da: int = 512, dt: int = 384, t_frames: int = 32, seed: int = 0,
             audio_noise: float = 1.5, text_noise: float = 1.0):
    """Cached-size random features (aisfx-like frames (T, 512), MiniLM-like tokens (L, 384))
    with class structure so that a model can learn; splits train/val/test 70/15/15."""
    from soundseek.data.types import Clip, Corpus
    from soundseek.train.data import Prepared, SplitView
    from soundseek.train.memory import ArrayAudioStore, ArrayTextStore

    g = np.random.default_rng(seed)
    n_classes = max(2, n_clips // 4)
    centres = g.standard_normal((n_classes, da)).astype(np.float32)
    mix = (g.standard_normal((da, dt)) / np.sqrt(da)).astype(np.float32)
    frames, tokens, sent, clips = [], [], [], []
    for i in range(n_clips):
        c = i % n_classes
        t = int(g.integers(t_frames // 2, t_frames + 1))
        frames.append((centres[c] + audio_noise * g.standard_normal((t, da))).astype(np.float32))
        split = "train" if i < 0.7 * n_clips else ("val" if i < 0.85 * n_clips else "test")
        clips.append(Clip(id=f"c{i}", audio=Path(f"c{i}.wav"), captions=[f"c{i} {k}" for k in range(caps)], split=split))
        for _ in range(caps):
            L = int(g.integers(6, 16))
            tok = (centres[c] @ mix + text_noise * g.standard_normal((L, dt))).astype(np.float32)
            tokens.append(tok)
            sent.append(tok.mean(0))
    views = {}
    for name in ("train", "val", "test"):
        rows = [i for i, c in enumerate(clips) if c.split == name]
        views[name] = SplitView(name, np.array(rows), np.array([i * caps + k for i in rows for k in range(caps)]),
                                np.array([p for p in range(len(rows)) for _ in range(caps)]),
                                [clips[i] for i in rows], [f"c{i} {k}" for i in rows for k in range(caps)])
    return Prepared(Corpus("bench", clips), ArrayAudioStore(frames), ArrayTextStore(tokens, np.stack(sent)), da, dt, views)


SCORER_SETS = {
    "global": ["model.scorer=global", "model.options={pooling: meanmax}"],
    "tap": ["model.scorer=tap", "model.options={attn_dim: 256}"],
}


def bench_config(out: str, scorer: str, batch: int, precision: str = "fp32", extra: tuple = ()):
    from soundseek.config import apply_overrides
    from soundseek.train.config import Config

    return apply_overrides(Config(), [f"train.out_dir={out}", f"train.batch_size={batch}", "train.progress=false",
                                      "train.tensorboard=false", "model.embed_dim=512", f"train.precision={precision}",
                                      *SCORER_SETS[scorer], *extra])


def train_steps_time(trainer, batch: int, steps: int, sync=lambda: None) -> float:
    """Seconds for ``steps`` train steps of global batch ``batch`` after 2 warm-up steps;
    ``sync()`` runs before starting and before stopping the clock (a barrier when distributed)."""
    from soundseek.train.loop import epoch_batches

    batches = epoch_batches(trainer.train_view, batch, 0, 0)
    for rows in batches[:2]:  # warm-up
        trainer.train_step(rows)
    sync()
    t0 = time.perf_counter()
    for k in range(steps):
        trainer.train_step(batches[k % len(batches)])
    sync()
    return time.perf_counter() - t0


def _worker(rank: int, world: int, port: int, threads: int, scorer: str, batch: int, steps: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    from soundseek import distributed as dist
    from soundseek.train.loop import Trainer

    dist.init_from_env("gloo")
    torch.set_num_threads(threads)
    trainer = Trainer(bench_config(out, scorer, batch), toy_data())
    trainer.model.train()
    seconds = train_steps_time(trainer, batch, steps, sync=dist.barrier)
    if dist.is_main():
        Path(out, "steps_per_s").write_text(str(steps / seconds))
    torch.distributed.destroy_process_group()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(world: int, threads: int, scorer: str, batch: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as out:
        if world == 1:
            os.environ.pop("WORLD_SIZE", None)
            from soundseek.train.loop import Trainer

            torch.set_num_threads(threads)
            trainer = Trainer(bench_config(out, scorer, batch), toy_data())
            return steps / train_steps_time(trainer, batch, steps)
        mp.start_processes(_worker, args=(world, _port(), threads, scorer, batch, steps, out), nprocs=world,
                           start_method="spawn")
        return float(Path(out, "steps_per_s").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128, help="global batch size")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scorers", nargs="+", default=["global", "tap"], choices=sorted(SCORER_SETS))
    ap.add_argument("--cores", type=int, default=2, help="cores to share: P processes x cores/P threads")
    args = ap.parse_args()
    configs = [(1, args.cores), (1, 1), (args.cores, 1)]
    rows = []
    for scorer in args.scorers:
        res = {}
        for world, threads in configs:
            res[(world, threads)] = statistics.median(
                measure(world, threads, scorer, args.batch, args.steps) for _ in range(args.repeats))
        ref = res[(1, args.cores)]
        for (world, threads), v in res.items():
            rows.append((scorer, f"{world} x {threads}", f"{v:.2f}", f"{ref:.2f}", f"{v / ref:.2f}"))
    print(f"\nTrainer steps/s, global batch {args.batch}, median of {args.repeats} x {args.steps} steps "
          f"({load_average()})\n")
    print_table(["scorer", "processes x threads", "steps/s", f"reference 1 x {args.cores}", "ratio"], rows, compact=True)


if __name__ == "__main__":
    main()
