from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="count clips/captions/durations and list every problem")
    c.add_argument("path", help="corpus root, manifest or folder")
    c.add_argument("--format", default="auto", help="corpus format (default: auto-detect)")
    c.add_argument("--no-probe", action="store_true", help="do not open audio files (faster)")
    c.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from soundseek.data.check import check_corpus
    from soundseek.data.formats import load_corpus

    corpus = load_corpus(args.path, args.format)
    report = check_corpus(corpus, probe_audio=not args.no_probe, progress=not args.json)
    print(report.to_json() if args.json else report.to_text())
    return 0 if report.ok else 1
