"""``soundseek index`` / ``soundseek search`` sub-commands (``serve`` lives in
:mod:`soundseek.cli.serve`: the index never imports the service).

The main CLI wires them as::

    sub = parser.add_subparsers(dest="command")
    add_index_parser(sub); add_search_parser(sub)
    ...
    return getattr(cli, f"run_{args.command}")(args, embedder_factory)  # run_index | run_search

Every ``run_*`` returns a process exit code (0 ok, 1 partial failure, 2 bad input).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

EmbedderFactory = Callable[[str | None], Any]


def _backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="faiss", choices=["faiss", "milvus"], help="vector backend")
    p.add_argument("--uri", default=None,
                   help="Milvus URI: a local .db file (Milvus Lite), http://host:19530 or https://host:port; "
                        "credentials only from $SOUNDSEEK_MILVUS_TOKEN (docs/scaling.md)")
    p.add_argument("--collection", default=None, help="Milvus collection name (default soundseek)")
    p.add_argument("--index-type", default=None,
                   help="faiss: flat|hnsw|ivf|auto (default flat); milvus: FLAT|AUTOINDEX|IVF_FLAT|HNSW")


def _backend_options(args: argparse.Namespace) -> dict:
    opts: dict = {}
    if args.backend == "milvus":
        if args.uri:
            opts["uri"] = args.uri
        if args.collection:
            opts["collection"] = args.collection
    elif args.uri or args.collection:
        raise ValueError("--uri/--collection apply to --backend milvus only")
    if args.index_type:
        opts["index_type"] = args.index_type
    return opts


def add_index_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("index", help="build or update a search index from a folder or corpus",
                              description="Decode + embed every clip of SOURCE into INDEX. Re-running\n"
                              "processes only new/changed files and drops deleted ones.",
                              formatter_class=HelpFormatter)
    p.add_argument("source", nargs="?", default=None, help="audio folder (recursive) or manifest/corpus path")
    p.add_argument("--index", required=True, help="index directory")
    p.add_argument("--check", action="store_true",
                   help="verify the index files (manifest, SQLite integrity, vector checksums) and exit: "
                        "0 all good, 1 damage found")
    p.add_argument("--model", default=None,
                   help="model checkpoint, or family:PATH for a pretrained model in a local directory "
                        "(e.g. hf-clap:models/clap-htsat-unfused); default: the built-in model")
    _backend_args(p)
    p.add_argument("--format", default="auto", help="corpus format for load_corpus (auto: folder scan for a directory)")
    p.add_argument("--captions", action="store_true", help="index the corpus' captions (audio->text search)")
    p.add_argument("--bias", default=None, help="with --captions: .npy or text file of one bias per caption")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=2, help="decoding threads")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="decode at most this much of each file (an update keeps the index's own)")
    p.add_argument("--rebuild", action="store_true", help="wipe the index first (e.g. after changing model)")
    p.add_argument("--retry-failed", action="store_true", help="retry files that failed before")
    p.add_argument("--no-frames", action="store_true", help="do not keep frame features (no --rerank later)")
    p.add_argument("--window", type=float, default=None, metavar="SECONDS",
                   help="files longer than this are also indexed as windows, so hits point at moments "
                        "(default: the index's own, else the model's clip length, 10 s; 0: off; "
                        "a new value re-embeds every file)")
    p.add_argument("--hop", type=float, default=None, metavar="SECONDS", help="window hop (default: half a window)")
    p.add_argument("--no-progress", action="store_true")
    return p


def run_check(index_dir: str) -> int:
    """``soundseek index --check``: one line per index file; exit 1 when any is damaged."""
    from ..safe_open import printable
    from .check import check_index

    bad = False
    for name, status in check_index(index_dir):
        bad |= status.startswith(("DAMAGED", "missing: no index"))
        print(f"{name}: {printable(status)}")
    print("index damaged" if bad else "index ok", file=sys.stderr)
    return 1 if bad else 0


def run_index(args: argparse.Namespace, embedder_factory: EmbedderFactory) -> int:
    import sqlite3

    from . import build_caption_index, build_index
    from .manifest import IndexMismatchError, probe_server

    if getattr(args, "check", False):
        return run_check(args.index)
    if args.source is None:
        print("error: give the SOURCE folder or corpus to index (or --check)", file=sys.stderr)
        return 2
    if Path(args.index).exists() and not Path(args.index).is_dir():
        print(f"error: --index {args.index} is a file, not an index directory: give a new or existing index "
              f"folder, e.g. --index {Path(args.index).with_suffix('')}.index", file=sys.stderr)
        return 2
    try:
        opts = _backend_options(args)
        probe_server(args.index, args.backend, opts.get("uri"))
        embedder = embedder_factory(args.model)
        if args.captions:
            from .source import read_corpus
            import numpy as np

            corpus = read_corpus(args.source, args.format)
            bias = None
            if args.bias:
                bias = np.load(args.bias) if args.bias.endswith(".npy") else np.loadtxt(args.bias, ndmin=1)
            rep = build_caption_index(corpus, embedder, args.index, bias=bias, backend=args.backend,
                                      backend_options=opts, rebuild=args.rebuild)
            print(rep.summary(), file=sys.stderr)
        else:
            from soundseek import distributed as dist

            if dist.init_from_env() and dist.world_size() > 1:  # torchrun: ranks embed shards, rank 0 writes
                dist.configure_threads()
            progress = not (args.no_progress or getattr(args, "quiet", False))
            rep = build_index(args.source, embedder, args.index, backend=args.backend, backend_options=opts,
                        batch_size=args.batch_size, workers=args.workers, progress=progress,
                        rebuild=args.rebuild, max_seconds=args.max_seconds, format=args.format,
                        retry_failed=args.retry_failed, model=args.model, keep_frames=not args.no_frames,
                        window=args.window, hop=args.hop)
            if rep is None:  # ranks > 0 under torchrun
                return 0
            if not progress:  # build_index prints the summary (and skipped files) with progress on
                print(rep.summary(), file=sys.stderr)
    except (IndexMismatchError, FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:
        print(f"error: {_damaged_db(args.index, e)}", file=sys.stderr)
        return 2
    return 1 if rep.skipped and rep.total == 0 else 0


def _damaged_db(index_dir: str, err: BaseException) -> str:
    from .integrity import IndexDamagedError, repair_hint

    return str(IndexDamagedError(Path(index_dir) / "index.sqlite", str(err), repair_hint(index_dir)))


def add_index_location(p: argparse.ArgumentParser) -> None:
    """INDEX as a positional argument or as ``--index DIR`` (the same as ``soundseek index``)."""
    p.add_argument("--index", dest="index_opt", default=None, metavar="DIR",
                   help="index directory (or give it as the first argument)")


def resolve_index(args: argparse.Namespace, positional: list[str]) -> tuple[str | None, list[str]]:
    """(index directory, the remaining positional values) from ``--index`` or the first positional."""
    vals = [v for v in positional if v is not None]
    if args.index_opt is not None:
        return args.index_opt, vals
    if not vals:
        return None, []
    return vals[0], vals[1:]


def add_filter_args(p: argparse.ArgumentParser) -> None:
    """``--min-duration`` ... ``--tag``: one flag per :data:`soundseek.index.filters.FILTER_KEYS` entry."""
    from .filters import FILTER_KEYS

    g = p.add_argument_group("filters (applied inside the search)")
    for key, typ, desc in FILTER_KEYS:
        g.add_argument("--" + key.replace("_", "-"), dest="f_" + key, type=typ, default=None,
                       metavar=key.split("_")[-1].upper(), help=desc)


def filters_of(args: argparse.Namespace) -> dict:
    from .filters import FILTER_KEYS

    return {k: getattr(args, "f_" + k) for k, _, _ in FILTER_KEYS if getattr(args, "f_" + k, None) is not None}


def add_search_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "search", help="search an index by text or by example sound",
        description="Search an index by text (file names, tags and the model's sense of the words),\n"
                    "by an example sound (--audio), or many queries from a file. Each hit shows its\n"
                    "confidence (strong / possible / weak, calibrated per model) and its semantic\n"
                    "score; filters narrow the search itself.",
        epilog="examples:\n  soundseek search --index sfx.index \"door creak\" --max-duration 3 --format wav\n"
               "  soundseek search sfx.index --audio ref.wav -k 20 --json",
        formatter_class=HelpFormatter)
    p.add_argument("index", nargs="?", default=None, help="index directory (or --index DIR)")
    p.add_argument("query", nargs="?", default=None, help="text query")
    add_index_location(p)
    p.add_argument("-k", type=int, default=10, help="results per query (1..1000)")
    p.add_argument("--offset", type=int, default=0, help="skip this many results (the next page)")
    p.add_argument("--audio", default=None, help="query by example: an audio file")
    p.add_argument("--queries", default=None,
                   help="file of queries: one text per line, or JSON lines {\"text\": ...} / {\"audio\": path}")
    p.add_argument("--rerank", type=int, default=0, metavar="K'", help="re-rank the top K' with the pair-wise scorer")
    p.add_argument("--mode", default=None, choices=["semantic", "text", "hybrid"],
                   help="text queries: vectors, file names/tags (BM25; loads no model), or both fused "
                        "(default: hybrid when the index has text)")
    p.add_argument("--text-weight", type=float, default=None, metavar="W",
                   help="hybrid: weight of the text ranking in the reciprocal-rank fusion (0..1, default 0.7)")
    p.add_argument("--json", action="store_true", help="JSON lines: {query, hits, total, message}")
    p.add_argument("--model", default=None,
                   help="model checkpoint or family:PATH (default: the one recorded in the index)")
    p.add_argument("--uri", default=None, help="override the Milvus URI (.db file, http:// or https://; "
                   "token from $SOUNDSEEK_MILVUS_TOKEN)")
    p.add_argument("--server", default=None, metavar="URL",
                   help="ask a running `soundseek serve` (e.g. http://127.0.0.1:8000) instead of loading the "
                        "model: a warm query in milliseconds; INDEX is then only a label; a server started with "
                        "--tokens gets the token of $SOUNDSEEK_TOKEN")
    add_filter_args(p)
    return p


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default shown (unless it is nothing, or the help already says it);
    descriptions and examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        if ("default" in h or action.default is None or action.default is False or action.default == argparse.SUPPRESS
                or action.option_strings == [] and action.nargs in ("?", "*")):
            return h
        return h + " (default: %(default)s)"


def _read_queries(path: str) -> list:
    out: list = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            row = json.loads(line)
            out.append({"audio": row["audio"]} if "audio" in row else {"text": row["text"]})
        else:
            out.append(line)
    return out


def _search_server(base: str, queries: list, k: int, mode: str | None, text_weight: float | None,
                   rerank: int, where: dict | None = None, offset: int = 0) -> list[dict]:
    """The queries answered by a running ``soundseek serve`` at ``base`` (stdlib HTTP only):
    per query ``{"hits", "total", "message"}``, hits with the keys of a local search. A server
    started with ``--tokens`` gets the bearer token of ``$SOUNDSEEK_TOKEN`` (an environment
    variable, never an argument: command lines are visible to every user of the machine)."""
    import os
    import urllib.error
    import urllib.parse
    import urllib.request
    import uuid

    base = base.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"--server must be an http(s) URL, got {base!r}")
    token = os.environ.get("SOUNDSEEK_TOKEN", "").strip()
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    out = []
    for q in queries:
        if isinstance(q, dict) and "audio" in q:
            path = Path(q["audio"])
            data = path.read_bytes()
            boundary = uuid.uuid4().hex
            fields = {"k": k, **({"offset": offset} if offset else {}), **(where or {})}
            body = ("".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{n}\"\r\n\r\n{v}\r\n"
                            for n, v in fields.items())
                    + f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
            req = urllib.request.Request(base + "/api/search/audio", data=body, method="POST",
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **auth})
        else:
            text = q["text"] if isinstance(q, dict) else q
            params = {"q": text, "k": k, "offset": offset, "rerank": rerank, "mode": mode or "auto", **(where or {})}
            if text_weight is not None:
                params["text_weight"] = text_weight
            req = urllib.request.Request(base + "/api/search?" + urllib.parse.urlencode(params), headers=auth)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                got = json.loads(r.read())
            out.append({"hits": [_local_keys(h) for h in got["hits"]], "total": got.get("total"),
                        "message": got.get("message")})
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read()).get("detail")
            except ValueError:
                detail = e.reason
            if e.code == 401:
                fix = ("the token in $SOUNDSEEK_TOKEN was refused" if token else
                       "it needs a token: set SOUNDSEEK_TOKEN to one made by `soundseek token add`")
                raise ValueError(f"server answered 401: {fix}") from None
            raise ValueError(f"server answered {e.code}: {detail}") from None
        except urllib.error.URLError as e:
            raise FileNotFoundError(f"cannot reach {base} ({e.reason}); start it with `soundseek serve INDEX`") from None
    return out


def _local_keys(hit: dict) -> dict:
    """A server hit with the keys of a local one (the page's extras, such as waveform peaks, dropped)."""
    from .search import HIT_KEYS

    return {k: v for k, v in hit.items() if k in HIT_KEYS or (k in ("index_score", "text", "clip") and v is not None)}


def run_search(args: argparse.Namespace, embedder_factory: EmbedderFactory) -> int:
    import sqlite3

    try:
        args.index, rest = resolve_index(args, [args.index, args.query])
        args.query = rest[0] if rest else None
        if len(rest) > 1:
            raise ValueError(f"unexpected argument {rest[1]!r} (the index is given by --index {args.index_opt})")
        if args.index is None:
            raise ValueError("give the index: `soundseek search --index DIR \"query\"` (or DIR as the first argument)")
        where = filters_of(args)
        queries: list = []
        if args.query:
            queries.append(args.query)
        if args.audio:
            queries.append({"audio": args.audio})
        if args.queries:
            queries.extend(_read_queries(args.queries))
        if not queries:
            raise ValueError("give a text query, --audio FILE or --queries FILE")
        if args.server:
            results = _search_server(args.server, queries, args.k, args.mode, args.text_weight, args.rerank,
                                     where, args.offset)
            return _print_results(args, queries, results)
        from .calibration import verdict
        from .filters import check_where
        from .search import Searcher

        check_where(where)  # bad filters fail before any model loads
        has_audio = any(isinstance(q, dict) and "audio" in q for q in queries)
        text_only = args.mode == "text" and not has_audio and not args.rerank
        searcher = Searcher.open(args.index, model=args.model, uri=args.uri, text_only=text_only,
                                 loader=embedder_factory)
        if not has_audio and "torch" in sys.modules:
            # a few text queries: one thread is faster than handing tiny ops to a second
            # OpenMP thread (20x so on a busy machine, docs/benchmarks.md)
            sys.modules["torch"].set_num_threads(1)
        hits = searcher.search_batch(queries, k=args.k, rerank=args.rerank, mode=args.mode,
                                     text_weight=args.text_weight, where=where, offset=args.offset)
        total = searcher.count(where)
        results = [{"hits": h, "total": total, "message": verdict(h)} for h in hits]
    except (FileNotFoundError, ValueError, KeyError, TypeError) as e:  # IndexMismatchError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as e:
        print(f"error: {_damaged_db(args.index, e)}", file=sys.stderr)
        return 2
    return _print_results(args, queries, results)


def _print_results(args: argparse.Namespace, queries: list, results: list[dict]) -> int:
    offset = getattr(args, "offset", 0) or 0
    for q, res in zip(queries, results):
        label = q if isinstance(q, str) else (q.get("text") or q.get("audio"))
        hits = res["hits"]
        if args.json:
            print(json.dumps({"query": label, "hits": hits, "total": res.get("total"), "message": res.get("message")},
                             ensure_ascii=False))
            continue
        total = res.get("total")
        print(f"# {label}" + (f"  ({len(hits)} of {total} files)" if total is not None else ""))
        if res.get("message"):
            print(f"  {res['message']}")
        for rank, h in enumerate(hits, offset + 1):
            print(format_hit(rank, h))
    return 0


def _moment(h: dict) -> str:
    a, b, d = h.get("start"), h.get("end"), h.get("duration")
    if a is None or b is None or (a <= 0.0 and d is not None and b >= d - 1e-6):
        return ""
    return f"  @{a:.1f}-{b:.1f}s"


def format_hit(rank: int, h: dict) -> str:
    """One result line: rank, confidence, semantic score, path, moment, why it matched, captions."""
    what = h.get("text") or h.get("path") or ""
    cap = "; ".join(h["captions"][:2]) if h.get("path") and h.get("captions") else ""
    why = h.get("why") or {}
    reasons = []
    if why.get("matched"):
        reasons.append("words: " + ", ".join(why["matched"]))
    score = "   --  " if h.get("score") is None else f"{h['score']:+.3f}"
    return (f"{rank:4d}  {h.get('confidence') or '':<8s}  {score}  {what}{_moment(h)}" + (f"  [{cap}]" if cap else "")
            + (f"  ({'; '.join(reasons)})" if reasons else ""))
