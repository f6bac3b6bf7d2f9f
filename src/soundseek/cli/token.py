"""``soundseek token add|revoke|list``: access tokens for ``soundseek serve --tokens FILE``
(:mod:`soundseek.service.auth`; stored hashed, a new token is printed once)."""
from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["add", "revoke", "list"])
    p.add_argument("name", nargs="?", default=None, help="the token's name (add, revoke)")
    p.add_argument("--tokens", required=True, metavar="FILE", help="the token file (created by add)")
    p.add_argument("--scope", action="append", default=None, choices=["read", "upload"],
                   help="what the token may do (repeatable; default read; upload = query by example, and read)")


def run(args: argparse.Namespace) -> int:
    from soundseek.service.auth import TokenFile

    f = TokenFile(args.tokens)
    if args.action == "list":
        for e in f.entries():
            print(f"{e['name']}\t{','.join(e['scopes'])}")
        return 0
    if not args.name:
        print(f"soundseek token {args.action}: error: give the token's NAME", file=sys.stderr)
        return 2
    if args.action == "add":
        scopes = sorted(set(args.scope or ["read"]) | ({"read"} if args.scope else set()))
        token = f.add(args.name, scopes)
        print(token)
        print(f"token {args.name!r} ({', '.join(scopes)}) added to {args.tokens}; it is shown only now",
              file=sys.stderr)
        return 0
    f.revoke(args.name)
    print(f"token {args.name!r} revoked (a running server stops accepting it on its next request)", file=sys.stderr)
    return 0
