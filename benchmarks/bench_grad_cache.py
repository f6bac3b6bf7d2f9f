"""GradCache vs plain gradient accumulation vs one full batch: time and peak memory of one
optimiser step with a trained audio tower (aisfx, live) on real clips, MiniLM frozen (cached).

    python benchmarks/bench_grad_cache.py [--batch 16] [--accumulate 4] [--seconds 2] [--repeats 3] [--device cpu|cuda]

Each mode runs in its own process: peak memory is the process's peak resident set on CPU
(``ru_maxrss``, which includes the loaded model and data: compare the differences) and
``torch.cuda.max_memory_allocated`` on a GPU. The full batch is the reference: GradCache should
take its gradients at about one extra forward per step, with the activations of one micro-batch.
Needs ``../shared/data/real-sfx-dev`` beside the repository.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "real-sfx-dev"
MODES = {"full batch": [], "accumulate, own negatives": ["train.accumulate={k}"],
         "accumulate + grad_cache": ["train.accumulate={k}", "train.grad_cache=true"]}


def child(mode: str, a: argparse.Namespace) -> dict:
    import resource

    import numpy as np
    import torch
    from _timing import median_time, synced

    from soundseek.config import apply_overrides
    from soundseek.models import Config
    from soundseek.train.data import prepare
    from soundseek.train.loop import Trainer

    torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp())
    rows = [json.loads(line) for line in (DATA / "manifest.jsonl").read_text().splitlines()][: a.batch]
    (tmp / "m.jsonl").write_text("\n".join(json.dumps({"audio": str(DATA / r["audio"]), "captions": r["captions"][:1],
                                                        "split": "train"}) for r in rows) + "\n")
    sets = [f"data.path={tmp / 'm.jsonl'}", f"data.cache_dir={tmp / 'cache'}", f"train.out_dir={tmp / 'run'}",
            "data.val_split=none", "train.progress=false", "train.tensorboard=false", f"train.batch_size={a.batch}",
            f"data.max_seconds={a.seconds}", "encoders.lock_audio=false", f"train.device={a.device}",
            *[s.format(k=a.accumulate) for s in MODES[mode]]]
    cfg = apply_overrides(Config(), sets)
    data = prepare(cfg, progress=False)
    trainer = Trainer(cfg, data)
    batch = np.arange(a.batch)
    step = synced(lambda: trainer.train_step(batch), trainer.device)
    step()  # warm-up
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = median_time(step, a.repeats)
    peak = (torch.cuda.max_memory_allocated() if trainer.device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"mode": mode, "seconds": t, "peak_mib": peak / 2**20, "device": str(trainer.device)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--accumulate", type=int, default=4)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a)))
        return
    from _timing import load_average, print_table

    print(f"batch {a.batch}, accumulate {a.accumulate}, {a.seconds} s clips, aisfx trained, {load_average()}")
    out = []
    for mode in MODES:
        cmd = [sys.executable, __file__, "--child", mode] + [f"--{k}={v}" for k, v in
                                                             (("batch", a.batch), ("accumulate", a.accumulate),
                                                              ("seconds", a.seconds), ("repeats", a.repeats),
                                                              ("threads", a.threads), ("device", a.device))]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        out.append(json.loads(res))
    ref = out[0]["seconds"]
    print(f"device: {out[0]['device']}")
    print_table(["mode", "s/step", "clips/s", "vs full batch", "peak MiB"],
                [[r["mode"], f"{r['seconds']:.2f}", f"{a.batch / r['seconds']:.1f}", f"{r['seconds'] / ref:.2f}",
                  f"{r['peak_mib']:.0f}"] for r in out])


if __name__ == "__main__":
    main()
