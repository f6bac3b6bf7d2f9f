"""``soundseek prepare debian OUT_DIR``: build a real captioned sound-effect corpus from Debian packages.

See docs/data-prep.md and :mod:`soundseek.data.debian`. Needs ``apt-get`` and ``dpkg`` (Debian/Ubuntu)
and a package index (``apt-get update`` once).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


CACHE_ENV = "SOUNDSEEK_DEBIAN_CACHE"


def _default_cache(out_dir: str) -> Path:
    """``$SOUNDSEEK_DEBIAN_CACHE``, else ``cache/`` beside the corpus folder (``data/debian-sfx/cache``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path(out_dir).resolve().parent / "cache"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="prepare_source", metavar="SOURCE", required=True)
    d = sub.add_parser("debian", help="sound effects of Debian game / sound-theme packages, captioned from file names")
    d.add_argument("out_dir", help="corpus folder to write (manifest.jsonl, audio/, report.json)")
    d.add_argument("--eval", action="store_true",
                   help="build the independent evaluation corpus (openttd-opensfx, tuxpaint-stamps-*) instead")
    d.add_argument("--packages", nargs="+", metavar="PKG",
                   help="only these packages (default: the built-in list; see --list)")
    d.add_argument("--cache", default=None,
                   help=f"download/unpack cache, reused across runs (default: ${CACHE_ENV}, else cache/ beside OUT_DIR)")
    d.add_argument("--max-duration", type=float, default=15.0, help="skip longer files, in s (default: 15)")
    d.add_argument("--min-duration", type=float, default=0.05, help="skip shorter files, in s (default: 0.05)")
    d.add_argument("--avoid", nargs="*", default=[], metavar="MANIFEST",
                   help="drop clips whose bytes equal a clip of these manifests (e.g. the other corpus)")
    d.add_argument("--no-instruments", action="store_true",
                   help="training corpus without the General MIDI instruments rendered with fluidsynth")
    d.add_argument("--no-templates", action="store_true",
                   help="training captions without the templated second caption ('the sound of X', ...)")
    d.add_argument("--segment", type=float, default=10.0,
                   help="training: cut non-music recordings longer than --max-duration into windows of this "
                        "many seconds (0: drop them; default: 10)")
    d.add_argument("--max-segments", type=int, default=10, help="at most this many windows per recording (default: 10)")
    d.add_argument("--seed", type=int, default=0, help="seed of the rendered instrument phrases (default: 0)")
    d.add_argument("--list", action="store_true", help="print the package list with licenses and exit")


def run(args: argparse.Namespace) -> int:
    from soundseek.data.debian import INSTRUMENT_PACKAGE, build_corpus, fetch_package, select_packages

    specs = select_packages(args.packages, evaluation=args.eval)
    if args.list:
        for s in specs:
            print(f"{s.name:28s} {s.license}")
        return 0
    if args.max_duration <= args.min_duration:
        raise ValueError(f"--max-duration ({args.max_duration}) must exceed --min-duration ({args.min_duration})")
    start = time.perf_counter()
    cache = Path(args.cache) if args.cache else _default_cache(args.out_dir)
    extra = None
    if not args.eval and not args.no_instruments:
        def extra() -> list[dict]:
            from soundseek.data.instruments import render

            tree = fetch_package(INSTRUMENT_PACKAGE, cache)
            rows = render(args.out_dir, tree / "usr/share/sounds/sf2/FluidR3_GM.sf2", seed=args.seed)
            print(f"{INSTRUMENT_PACKAGE:28s} rendered {len(rows)} instrument clips (seed {args.seed})", flush=True)
            return rows
    result = build_corpus(args.out_dir, specs, cache, max_duration=args.max_duration,
                          min_duration=args.min_duration, avoid=[Path(a) for a in args.avoid],
                          log=lambda line: print(line, flush=True), extra_rows=extra,
                          templates=not args.eval and not args.no_templates,
                          segment=0.0 if args.eval else args.segment, max_segments=args.max_segments)
    print("\n".join(result.summary().splitlines()[len(result.reports):]))
    print(f"wrote {Path(args.out_dir) / 'manifest.jsonl'} ({len(result.rows)} clips) "
          f"in {time.perf_counter() - start:.0f} s; skipped files are listed in report.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Standalone entry point: ``python -m soundseek.cli.prepare debian OUT_DIR ...``."""
    parser = argparse.ArgumentParser(prog="soundseek prepare", description="build corpora from public sources")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
