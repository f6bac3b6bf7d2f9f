"""``soundseek serve``: the web page and JSON API over an index (:mod:`soundseek.service.app`,
imported only when the command runs, so that the parser works without the ``serve`` extra).
The index commands (:mod:`soundseek.index.cli`) never import the service."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from soundseek.cli.indexing import embedder_factory
from soundseek.index.cli import EmbedderFactory, HelpFormatter, _damaged_db, add_index_location, resolve_index


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="web page + JSON API over an index",
                              description="Serve the search page and the JSON API (/docs) over an index,\n"
                                          "with the model loaded once: warm searches in milliseconds.",
                              formatter_class=HelpFormatter)
    p.add_argument("index", nargs="?", default=None, help="index directory (or --index DIR)")
    add_index_location(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--model", default=None,
                   help="model checkpoint or family:PATH (default: the one recorded in the index)")
    p.add_argument("--allowed-host", action="append", default=None, metavar="HOST",
                   help="accepted Host header (repeatable; *.example.org for sub-domains, * for any); "
                        "default: the --host address, localhost, 127.0.0.1, ::1")
    p.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                   help="let pages from ORIGIN (e.g. https://sounds.example.org) call the API (repeatable; "
                        "default: CORS off)")
    p.add_argument("--tokens", default=None, metavar="FILE",
                   help="require bearer tokens from FILE (made by `soundseek token add`); needed to serve "
                        "a non-loopback address")
    p.add_argument("--no-auth", action="store_true",
                   help="serve a non-loopback address without tokens (anyone who reaches it can search, "
                        "download and upload)")
    return p


def run_serve(args: argparse.Namespace, embedder_factory: EmbedderFactory) -> int:
    import sqlite3

    from soundseek.extras import MissingExtraError

    try:
        from soundseek.service.app import serve
    except MissingExtraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from soundseek.index.search import Searcher

    try:
        from soundseek.service.auth import require_auth

        tokens = require_auth(args.host, getattr(args, "tokens", None), getattr(args, "no_auth", False))
        args.index, rest = resolve_index(args, [args.index])
        if rest or args.index is None:
            print("error: give one index: `soundseek serve --index DIR` (or DIR as the argument)", file=sys.stderr)
            return 2
        searcher = Searcher.open(args.index, model=args.model, loader=embedder_factory)
        serve(searcher, host=args.host, port=args.port, allowed_hosts=args.allowed_host,
              cors_origins=args.cors_origin, tokens=tokens)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:
        print(f"error: {_damaged_db(args.index, e)}", file=sys.stderr)
        return 2
    return 0


def register(subparsers, name: str) -> argparse.ArgumentParser:
    return add_serve_parser(subparsers)


def run(args: argparse.Namespace) -> int:
    return run_serve(args, embedder_factory)
