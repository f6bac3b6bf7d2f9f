"""``soundseek data ...`` sub-commands: ``check`` (corpus health) and ``synth`` (demo corpus).

The main CLI wires them with::

    from soundseek.data import cli as data_cli
    data_cli.add_parser(subparsers)        # adds "data" with sub-commands check / synth
    ...
    return data_cli.run(args)              # exit code: 1 when the check finds errors

Standalone: ``python -m soundseek.data.cli check PATH --format auto``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``data`` command (with ``check`` and ``synth``) to ``subparsers``."""
    p = subparsers.add_parser("data", help="inspect datasets, build the synthetic demo corpus")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``check`` and ``synth`` actions of ``soundseek data``."""
    from soundseek.data.formats import FORMATS

    sub = p.add_subparsers(dest="data_command", required=True)
    c = sub.add_parser("check", help="read a dataset, probe its audio, list every problem")
    c.add_argument("path", type=Path, help="dataset root (folder, .jsonl manifest or WavCaps .json)")
    c.add_argument("--format", default="auto", choices=["auto"] + FORMATS.names())
    c.add_argument("--splits", nargs="*", default=None, help="only these splits")
    c.add_argument("--no-probe", action="store_true", help="do not open the audio files")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("synth", help="write the procedural captioned demo corpus")
    s.add_argument("out_dir", type=Path)
    s.add_argument("--n-clips", type=int, default=600)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sample-rate", type=int, default=22050)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run a ``data`` sub-command; returns the process exit code."""
    if args.data_command == "check":
        from soundseek.data.check import check_corpus
        from soundseek.data.formats import load_corpus

        try:
            corpus = load_corpus(args.path, args.format, **({"splits": args.splits} if args.splits else {}))
        except (FileNotFoundError, ValueError, KeyError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report = check_corpus(corpus, probe_audio=not args.no_probe, progress=not args.quiet)
        print(report.to_json() if args.json else report.to_text())
        return 0 if report.ok else 1
    if args.data_command == "synth":
        from soundseek.data.synthetic import make_synthetic_corpus

        corpus = make_synthetic_corpus(args.out_dir, n_clips=args.n_clips, seed=args.seed,
                                       sample_rate=args.sample_rate)
        print(f"{len(corpus)} clips, splits {corpus.splits}, manifest {args.out_dir / 'manifest.jsonl'}")
        return 0
    raise ValueError(f"Invalid data command {args.data_command!r}. Valid: check, synth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soundseek")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main(["data"] + sys.argv[1:]))
