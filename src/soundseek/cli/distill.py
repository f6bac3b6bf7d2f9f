"""``soundseek distill``: ensemble distillation targets from trained checkpoints."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+", help="teacher checkpoints (best.pt of several runs)")
    p.add_argument("--out", required=True, help="targets file to write (e.g. runs/teachers.pt)")
    p.add_argument("--split", default="train", help="corpus split to score (default: train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the first teacher's recipe, e.g. --set data.path=../clotho")


def run(args: argparse.Namespace) -> int:
    from soundseek.train.distill import write_targets

    s = write_targets(args.checkpoints, args.out, split=args.split, overrides=args.set)
    print(f"wrote {s['out']}: mean logits of {s['teachers']} teacher(s) over {s['captions']} captions x "
          f"{s['clips']} clips; train a student with --set loss.distill={s['out']}")
    return 0
