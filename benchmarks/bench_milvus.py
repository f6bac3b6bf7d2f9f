"""Milvus server vs FAISS on the same clips: index build and query throughput.

1. End to end: ``build_index`` of an audio folder (default ``../shared/data/real-sfx-dev/audio``)
   with the deterministic :class:`HashEmbedder` (so decoding + embedding cost the same for both),
   once with FAISS and once with a Milvus standalone server (the ``milvus`` package's binary,
   started here on a free port under a temporary directory); then audio queries (every clip
   searched for itself, k=10) through :class:`Searcher`.
2. Backend only: ``--vectors`` random unit vectors of the index width added, then ``--queries``
   searches (k=10), FAISS flat vs Milvus FLAT.

    PYTHONPATH=src python3 benchmarks/bench_milvus.py --vectors 20000 --queries 500
"""
from __future__ import annotations

import argparse
import platform
import socket
import tempfile
import time
from pathlib import Path

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"
                                            / "real-sfx-dev" / "audio"))
    ap.add_argument("--vectors", type=int, default=20000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--dim", type=int, default=512)
    args = ap.parse_args()

    from milvus import default_server
    from pymilvus import MilvusClient

    from soundseek.index import HashEmbedder, Searcher, build_index
    from soundseek.index.backends.base import build_backend
    from soundseek.index.indexer import load_wave

    tmp = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
    default_server.set_base_dir(str(tmp / "server"))
    default_server.listen_port = _free_port()
    t0 = time.perf_counter()
    default_server.start()
    uri = f"http://127.0.0.1:{default_server.listen_port}"
    version = MilvusClient(uri=uri).get_server_version()
    print(f"CPU: {_cpu()} ({__import__('os').cpu_count()} cores); Milvus server {version} "
          f"started in {time.perf_counter() - t0:.1f} s")
    try:
        folder = Path(args.folder)
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        rows = []
        for name, backend, opts in (("faiss", "faiss", {}),
                                    ("milvus", "milvus", {"uri": uri, "collection": "bench"})):
            emb = HashEmbedder(dim=args.dim)
            t = time.perf_counter()
            rep = build_index(folder, emb, tmp / name, backend=backend, backend_options=opts, progress=False)
            build = time.perf_counter() - t
            s = Searcher(tmp / name, emb)
            waves = [load_wave(f, emb.sample_rate)[0] for f in files[:100]]
            q, _ = emb.embed_audio(waves)
            t = time.perf_counter()
            hits = s.search_vectors(q, k=10)
            query = time.perf_counter() - t
            rows.append((name, rep.total, build, rep.total / build, len(q) / query,
                         sum(h[0]["score"] > 0.999 for h in hits if h) / len(q)))
        print("\nEnd to end (HashEmbedder, same clips):")
        print("| backend | clips | build s | clips/s | queries/s (Searcher, k=10) | own clip first |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]:.0f} | {r[5]:.2f} |")

        rng = np.random.default_rng(0)
        d = args.dim + 1
        v = rng.standard_normal((args.vectors, d)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        qs = v[rng.choice(args.vectors, args.queries, replace=False)]
        print(f"\nBackend only ({args.vectors} vectors of width {d}, {args.queries} queries, k=10):")
        print("| backend | add vectors/s | queries/s (one at a time) | queries/s (one batch) | top-1 exact |")
        print("|---|---|---|---|---|")
        for name, kw in (("faiss flat", {}), ("milvus FLAT", {"uri": uri, "collection": "raw", "drop_existing": True})):
            b = build_backend("faiss" if name.startswith("faiss") else "milvus", d, **kw)
            t = time.perf_counter()
            b.add(np.arange(args.vectors), v)
            b.save() if not name.startswith("faiss") else None
            add = args.vectors / (time.perf_counter() - t)
            t = time.perf_counter()
            for row in qs:
                b.search_arrays(row[None], 10)
            single = args.queries / (time.perf_counter() - t)
            t = time.perf_counter()
            _, ids = b.search_arrays(qs, 10)
            batch = args.queries / (time.perf_counter() - t)
            exact = float(np.mean(ids[:, 0] == np.argmax(qs @ v.T, axis=1)))
            print(f"| {name} | {add:,.0f} | {single:,.0f} | {batch:,.0f} | {exact:.2f} |")
            if hasattr(b, "close"):
                b.close()
    finally:
        default_server.stop()


if __name__ == "__main__":
    main()
