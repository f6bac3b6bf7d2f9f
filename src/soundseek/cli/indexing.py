"""``soundseek index | search`` (implemented in :mod:`soundseek.index.cli`), given the
model loader: a checkpoint path, or nothing for the small model shipped in the package."""
from __future__ import annotations

import argparse

from soundseek.index import cli as _impl


def embedder_factory(model: str | None):
    from soundseek.pipeline import Pipeline

    return Pipeline.load(model)


def register(subparsers, name: str) -> argparse.ArgumentParser:
    return getattr(_impl, f"add_{name}_parser")(subparsers)


def run(args: argparse.Namespace) -> int:
    return getattr(_impl, f"run_{args.command}")(args, embedder_factory)
