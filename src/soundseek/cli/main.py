"""``soundseek`` command line: one sub-command per module in this package.

Start-up stays light: only the module of the command being run is imported (``--help``
imports them all), and each imports its heavy dependencies (torch, faiss, transformers)
when it needs them. Logging: only the ``soundseek`` logger is configured (INFO; ``-q``
WARNING, ``-v`` DEBUG); third-party loggers keep Python's default (warnings and errors
only), and transformers' progress bars and notices are off unless ``-v``.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from soundseek import __version__

# (name, module, help) — each module has add_arguments(parser) and run(args) -> int, or register()
LIBRARY_COMMANDS = [
    ("index", "soundseek.cli.indexing", "index a folder or manifest of sounds for search"),
    ("search", "soundseek.cli.indexing", "search an index by text or by example sound"),
    ("serve", "soundseek.cli.serve", "serve an index over HTTP with a web page"),
    ("collections", "soundseek.cli.collections", "favourites and named collections of sounds in an index"),
    ("token", "soundseek.cli.token", "make or revoke access tokens for `serve --tokens`"),
]
RESEARCH_COMMANDS = [
    ("demo", "soundseek.cli.demo", "build the synthetic corpus, train, evaluate and search (no downloads)"),
    ("train", "soundseek.cli.train", "train a model from a YAML recipe (cached features or end to end)"),
    ("eval", "soundseek.cli.evaluate", "evaluate a checkpoint (T2A and A2T metrics); --calibrate fits match confidence"),
    ("distill", "soundseek.cli.distill", "write ensemble-distillation targets from trained checkpoints"),
    ("ensemble", "soundseek.cli.ensemble", "join trained checkpoints into one ensemble model"),
    ("features", "soundseek.cli.features", "extract and cache frozen-encoder features"),
    ("data", "soundseek.cli.data", "inspect corpora (data check) and write the synthetic corpus"),
    ("prepare", "soundseek.cli.prepare", "build corpora from public sources (Debian sound packages)"),
    ("experiment", "soundseek.cli.experiment", "train and evaluate a grid of configs x seeds"),
    ("analyze", "soundseek.cli.analyze", "lexical richness of caption sets"),
    ("convert", "soundseek.cli.convert", "convert original checkpoints (LAION-CLAP) to a loadable layout"),
]
COMMANDS = LIBRARY_COMMANDS + RESEARCH_COMMANDS


def _command_list() -> str:
    """The two groups of commands, library first, for ``soundseek --help``."""
    width = max(len(n) for n, _, _ in COMMANDS) + 2
    out = []
    for title, group in (("library commands", LIBRARY_COMMANDS), ("research commands", RESEARCH_COMMANDS)):
        out.append(f"{title}:")
        out.extend(f"  {n:<{width}}{h}" for n, _, h in group)
        out.append("")
    return "\n".join(out) + "run `soundseek COMMAND --help` for a command's options (defaults shown)."


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``only``: build just that command's sub-parser (faster start-up)."""
    import importlib

    from soundseek.index.cli import HelpFormatter

    p = argparse.ArgumentParser(prog="soundseek", description="Language-based audio retrieval: index a sound "
                                "library and search it by words or by example.", epilog=_command_list(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"soundseek {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging (also third-party notices)")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", help="one of the commands below")
    for name, module, help_ in COMMANDS:
        if only is not None and name != only:
            continue
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue  # a command whose module is not in this build
        if hasattr(mod, "register"):  # modules that build their own sub-parser
            sp = mod.register(sub, name)
        else:
            sp = sub.add_parser(name, help=help_, description=help_, formatter_class=HelpFormatter)
            mod.add_arguments(sp)
        if not sp.description:
            sp.description = help_
        sp.set_defaults(_module=module)
    sub._choices_actions.clear()  # listed by group in the epilog instead
    return p


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the record (never a stale stream),
    except records of a ``soundseek.*`` logger that has a handler of its own (the service's
    access log): those are printed once, by that handler."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "soundseek" and logging.getLogger(record.name).handlers:
            return False
        return super().filter(record)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def configure_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Configure the ``soundseek`` logger only (stderr); silence transformers' notices and
    progress bars unless ``verbose``."""
    log = logging.getLogger("soundseek")
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    fmt = logging.Formatter("%(message)s" if not verbose else "%(levelname)s %(name)s: %(message)s")
    mine = [h for h in log.handlers if isinstance(h, _StderrHandler)]
    if not mine:
        mine = [_StderrHandler()]
        log.addHandler(mine[0])
    mine[0].setFormatter(fmt)
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _command_in(argv: list[str]) -> str | None:
    names = {n for n, _, _ in COMMANDS}
    for a in argv:
        if a in ("-h", "--help", "--version"):
            return None
        if not a.startswith("-"):
            return a if a in names else None
    return None


def main(argv: list[str] | None = None) -> int:
    import importlib

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    from soundseek.config import ConfigError

    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except (ConfigError, FileNotFoundError, FileExistsError, KeyError, ValueError, ConnectionError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"soundseek {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; completed work is saved (rerun to continue)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
