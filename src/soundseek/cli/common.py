"""Argument helpers shared by the sub-commands."""
from __future__ import annotations

import argparse

from soundseek.config import apply_overrides, load_yaml
from soundseek.models.config import Config


# Metrics are fractions in Python and JSON; printed tables show percent, and say so.
TABLE_UNITS = "(R1..R50 and mAP in percent; medR, meanR are ranks)"


def add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("config", nargs=None if required else "?", help="YAML recipe (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")


def load_config(args: argparse.Namespace) -> Config:
    cfg = load_yaml(Config, args.config, args.set) if getattr(args, "config", None) else apply_overrides(Config(), args.set)
    from soundseek import distributed as dist

    if dist.init_from_env():  # launched by torchrun: join the group, quiet logs on ranks > 0
        import logging

        if not dist.is_main():
            logging.getLogger().setLevel(logging.WARNING)
    dist.configure_threads(cfg.train.num_threads)  # under torchrun: the node's CPUs split per process
    return cfg
