from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", help="experiment grid YAML (see experiments/)")
    p.add_argument("--only", action="append", default=None, help="run only these rows (repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override every cell's recipe after the grid's own settings, e.g. "
                        "--set data.path=data/debian-sfx/train/manifest.jsonl (repeatable)")
    p.add_argument("--grid-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the grid file itself, e.g. --grid-set out=results/other "
                        "or --grid-set 'seeds=[0]' (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from soundseek.train.experiment import run_grid

    out = run_grid(args.grid, progress=not args.quiet, only=args.only, sets=args.set, grid_sets=args.grid_set)
    print(out["table"])
    print("(mean ± std over seeds; R1..R50 and mAP in percent, medR and meanR are ranks)")
    print(f"{out['cells_trained']} cells trained in {out['seconds']:.0f} s")
    return 0
