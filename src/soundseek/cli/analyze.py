from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="analyze_command", metavar="ACTION", required=True)
    c = sub.add_parser("captions", help="MTLD, TTR, vocabulary size; KDE + violin plots comparing two sets")
    c.add_argument("a", help="captions: .txt (one per line), .csv (Clotho) or .jsonl manifest")
    c.add_argument("b", nargs="?", help="a second caption set to compare with")
    c.add_argument("--out", default="lexical", help="folder for the plot (PNG) and the JSON report")
    c.add_argument("--labels", nargs="+", default=None, metavar="NAME", help="names of the caption sets in the plot")


def run(args: argparse.Namespace) -> int:
    from soundseek.analysis import analyze_caption_files

    report = analyze_caption_files(args.a, args.b, args.out, labels=args.labels)
    print(json.dumps(report, indent=2, default=str))
    return 0
