"""Argument helpers shared by the sub-commands."""
from __future__ import annotations

import argparse

import torch

from soundseek.config import apply_overrides, load_yaml
from soundseek.train.config import Config


def add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("config", nargs=None if required else "?", help="YAML recipe (see configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=5 (repeatable)")


def load_config(args: argparse.Namespace) -> Config:
    cfg = load_yaml(Config, args.config, args.set) if getattr(args, "config", None) else apply_overrides(Config(), args.set)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    return cfg
