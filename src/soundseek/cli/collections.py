"""``soundseek collections``: named collections of sounds kept beside an index
(:mod:`soundseek.index.collections`). Files are kept by content, so they stay in their
collections when moved within the library, re-indexed or rebuilt.

    soundseek collections list --index IDX
    soundseek collections add "door ideas" sounds/doors/creak_01.wav --index IDX
    soundseek collections show "door ideas" --index IDX [--json]
    soundseek collections remove "door ideas" doors/creak_01.wav --index IDX
    soundseek collections export "door ideas" picked/ --as links --index IDX
    soundseek collections delete "door ideas" --index IDX

A file is named by its path (absolute, or relative to the current folder) or by its path
inside the indexed library, as ``search`` prints it. No model is loaded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_,
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        sp.add_argument("--index", required=True, metavar="DIR", help="the index directory")
        return sp

    action("list", "the collections and how many files each holds")
    for name, help_ in (("add", "add files to a collection (created if new)"),
                        ("remove", "remove files from a collection")):
        sp = action(name, help_)
        sp.add_argument("name", help="collection name")
        sp.add_argument("files", nargs="+", metavar="FILE",
                        help="a file: its path, or its path inside the indexed library")
    sp = action("show", "the files of a collection (absolute paths)")
    sp.add_argument("name", help="collection name")
    sp.add_argument("--json", action="store_true", help="one JSON object per file")
    sp = action("export", "write a collection out: a text list of absolute paths, or a folder of links or copies")
    sp.add_argument("name", help="collection name")
    sp.add_argument("dest", help="the list file (- for standard output) or the new folder")
    sp.add_argument("--as", dest="how", default="list", choices=["list", "links", "copies"],
                    help="list: absolute paths, one a line; links: a folder of symbolic links; "
                         "copies: a folder of copies")
    sp = action("delete", "delete a collection (its files stay where they are)")
    sp.add_argument("name", help="collection name")


def _open(index: str):
    from soundseek.index.collections import Collections
    from soundseek.index.store import Store

    if not (Path(index) / "index.sqlite").is_file():
        from soundseek.index.search import missing_index_message

        raise FileNotFoundError(missing_index_message(index))
    return Collections(Store(index))


def resolve(store, name: str) -> int:
    """The item id of a file named on the command line: by its resolved path, its path in
    the library, or (a copy elsewhere) its content. KeyError when it is not indexed."""
    p = Path(name)
    found = store.find_file(realpath=os.path.realpath(p)) if p.is_file() else None
    if found is None:
        found = store.find_file(key=p.as_posix())
    if found is None and p.is_file():
        h = hashlib.sha1()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        found = store.find_file(sha1=h.hexdigest())
    if found is None:
        raise KeyError(f"{name} is not in the index {store.dir} (index it first, or give its path in the library)")
    return found


def run(args: argparse.Namespace) -> int:
    cols = _open(args.index)
    if args.action == "list":
        names = cols.names()
        for c in names:
            print(f"{c['count']:6d}  {c['name']}")
        if not names:
            print("no collections yet: add files with `soundseek collections add NAME FILE --index "
                  f"{args.index}`", file=sys.stderr)
        return 0
    if args.action in ("add", "remove"):
        ids = [resolve(cols.store, f) for f in args.files]
        if args.action == "add":
            n = cols.add(args.name, ids)
            print(f"{args.name}: {n} added ({len(ids) - n} already there)")
        else:
            n = cols.remove(args.name, ids)
            print(f"{args.name}: {n} removed")
        return 0
    if args.action == "show":
        for it in cols.items(args.name):
            if args.json:
                print(json.dumps({k: it[k] for k in ("abs_path", "path", "key", "sha1", "id")}, ensure_ascii=False))
            else:
                print(it["abs_path"] if it["abs_path"] else f"(no longer in the index) {it['key']}")
        return 0
    if args.action == "export":
        if args.dest == "-":
            if args.how != "list":
                raise ValueError("only --as list can go to standard output")
            for it in cols.items(args.name):
                if it["abs_path"]:
                    print(it["abs_path"])
            return 0
        dest, n = cols.export(args.name, args.dest, args.how)
        print(f"{args.name}: {n} files -> {dest} ({args.how})")
        return 0
    cols.delete(args.name)
    print(f"deleted the collection {args.name}")
    return 0
