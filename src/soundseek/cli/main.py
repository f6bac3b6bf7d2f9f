"""``soundseek`` command line: one sub-command per module in this package."""
from __future__ import annotations

import argparse
import logging
import sys

from soundseek import __version__

# (name, module, help) — each module has add_arguments(parser) and run(args) -> int
COMMANDS = [
    ("demo", "soundseek.cli.demo", "build the synthetic corpus, train, evaluate and search (no downloads)"),
    ("train", "soundseek.cli.train", "train a model from a YAML recipe (cached features or end to end)"),
    ("eval", "soundseek.cli.evaluate", "evaluate a checkpoint (T2A and A2T metrics)"),
    ("distill", "soundseek.cli.distill", "write ensemble-distillation targets from trained checkpoints"),
    ("features", "soundseek.cli.features", "extract and cache frozen-encoder features"),
    ("data", "soundseek.cli.data", "inspect corpora (data check) and write the synthetic corpus"),
    ("prepare", "soundseek.cli.prepare", "build corpora from public sources (Debian sound packages)"),
    ("experiment", "soundseek.cli.experiment", "train and evaluate a grid of configs x seeds"),
    ("analyze", "soundseek.cli.analyze", "lexical richness of caption sets"),
    ("index", "soundseek.cli.indexing", "index a folder or manifest of sounds for search"),
    ("search", "soundseek.cli.indexing", "search an index by text or by example sound"),
    ("serve", "soundseek.cli.indexing", "serve an index over HTTP with a web page"),
    ("convert", "soundseek.cli.convert", "convert original checkpoints (LAION-CLAP) to a loadable layout"),
]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    p = argparse.ArgumentParser(prog="soundseek", description="Language-based audio retrieval.")
    p.add_argument("--version", action="version", version=f"soundseek {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in COMMANDS:
        mod = importlib.import_module(module)
        if hasattr(mod, "register"):  # modules that build their own sub-parser
            sp = mod.register(sub, name)
        else:
            sp = sub.add_parser(name, help=help_, description=help_)
            mod.add_arguments(sp)
        sp.set_defaults(_module=module)
    return p


def main(argv: list[str] | None = None) -> int:
    import importlib

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from soundseek.config import ConfigError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"soundseek {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed work is saved (rerun to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
