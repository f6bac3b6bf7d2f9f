"""``soundseek ensemble``: join trained checkpoints into one model that scores by their mean cosine."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+", help="member checkpoints (best.pt of runs with the same frozen towers)")
    p.add_argument("--out", required=True, help="ensemble checkpoint to write (e.g. runs/ensemble.pt)")


def run(args: argparse.Namespace) -> int:
    from soundseek.models.ensemble import combine

    model = combine(args.checkpoints, args.out)
    print(f"wrote {args.out}: ensemble of {len(args.checkpoints)} models, {model.scorer.embed_dim}-d vectors "
          f"(the mean of the members' cosines)")
    return 0
