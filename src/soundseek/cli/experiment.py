from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="experiment grid YAML (see experiments/)")
    p.add_argument("--only", action="append", default=None, help="run only these rows (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from soundseek.train.experiment import run_grid

    out = run_grid(args.grid, progress=not args.quiet, only=args.only)
    print(out["table"])
    print("(mean ± std over seeds; R1..R50 and mAP in percent, medR and meanR are ranks)")
    return 0
