"""Argument helpers shared by the sub-commands."""
from __future__ import annotations

import argparse
from pathlib import Path

from soundseek.config import apply_overrides, load_yaml
from soundseek.models.config import Config


# Metrics are fractions in Python and JSON; printed tables show percent, and say so.
TABLE_UNITS = "(R1..R50 and mAP in percent; medR, meanR are ranks)"


RECIPES = Path(__file__).resolve().parents[1] / "configs"
"""The recipes shipped in the package (the repository's ``configs/`` points here)."""


def recipe_path(name: str) -> Path:
    """A recipe file: ``name`` itself when it exists, else the packaged recipe of that name
    (``gpa``, ``gpa.yaml``, ``paper/thesis-atst-tap``). Raises FileNotFoundError listing them."""
    p = Path(name).expanduser()
    if p.is_file():
        return p
    rel = Path(name[len("configs/"):] if name.startswith("configs/") else name)
    for cand in (RECIPES / rel, RECIPES / rel.with_name(rel.name + ".yaml")):
        if ".." not in rel.parts and cand.is_file():
            return cand
    names = sorted(str(r.relative_to(RECIPES).with_suffix("")) for r in RECIPES.rglob("*.yaml"))
    raise FileNotFoundError(f"No recipe file {name!r} and no packaged recipe of that name. Packaged: {', '.join(names)}")


def add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("config", nargs=None if required else "?",
                   help="YAML recipe: a file, or the name of a packaged recipe (gpa, paper/thesis-atst-tap)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")


def load_config(args: argparse.Namespace) -> Config:
    if getattr(args, "config", None):
        cfg = load_yaml(Config, recipe_path(args.config), args.set)
    else:
        cfg = apply_overrides(Config(), args.set)
    from soundseek import distributed as dist

    if dist.init_from_env():  # launched by torchrun: join the group, quiet logs on ranks > 0
        import logging

        if not dist.is_main():
            logging.getLogger().setLevel(logging.WARNING)
    dist.configure_threads(cfg.train.num_threads)  # under torchrun: the node's CPUs split per process
    return cfg
