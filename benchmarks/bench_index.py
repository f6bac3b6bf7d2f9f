"""Index benchmarks: search throughput (our FAISS backend wrapper vs raw FAISS) and indexing
speed (build_index with the fake embedder vs the decode-only floor).

    PYTHONPATH=src python benchmarks/bench_index.py --sizes 100000 1000000 --clips 300

Prints markdown tables (median of --repeats).
"""
from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _timing import median_time, print_table


def bench_search(sizes: list[int], dim: int, nq: int, k: int, repeats: int) -> None:
    import faiss

    from soundseek.index.backends.base import build_backend, fold_items, fold_queries

    rng = np.random.default_rng(0)
    print(f"\n### Search throughput: exact inner product, {dim}-d, batches of {nq} queries, k={k}\n")
    print("| items | raw faiss IndexFlatIP (q/s) | ours: FaissBackend.search_arrays (q/s) | ours: .search plain hits (q/s) "
          "| ratio ours/raw (hits) |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        x = rng.standard_normal((n, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q = rng.standard_normal((nq, dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        raw = faiss.IndexFlatIP(dim)
        raw.add(x)
        ours = build_backend("faiss", dim + 1)  # with the folded bias column, as the index uses it
        for s in range(0, n, 200_000):
            ours.add(np.arange(s, min(n, s + 200_000)), fold_items(x[s:s + 200_000]))
        del x
        fq = fold_queries(q)
        _, i_raw = raw.search(q, k)
        _, i_ours = ours.search_arrays(fq, k)
        agree = float((i_raw == i_ours).mean())
        t_raw = median_time(lambda: raw.search(q, k), repeats)
        t_arr = median_time(lambda: ours.search_arrays(fq, k), repeats)
        t_hits = median_time(lambda: ours.search(fq, k), repeats)
        print(f"| {n:,} | {nq / t_raw:,.0f} | {nq / t_arr:,.0f} | {nq / t_hits:,.0f} | {t_raw / t_hits:.2f} "
              f"(top-{k} ids agree {agree:.3f}) |")
        del raw, ours


def bench_indexing(n_clips: int, seconds: float, repeats: int, batch_size: int) -> None:
    import soundfile as sf

    from soundseek.audio.io import load_audio
    from soundseek.index import HashEmbedder, build_index

    emb = HashEmbedder(dim=512, sample_rate=16000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clips"
        root.mkdir()
        rng = np.random.default_rng(0)
        for i in range(n_clips):
            x = (0.1 * rng.standard_normal(int(seconds * 44100))).astype(np.float32)
            sf.write(root / f"c{i:05d}.flac", x, 44100)  # 44.1 kHz FLAC -> decode + resample to 16 kHz
        files = sorted(root.glob("*.flac"))

        def decode_only():
            with ThreadPoolExecutor(2) as ex:
                list(ex.map(lambda p: load_audio(p, 16000), files))

        def index(i=[0]):
            i[0] += 1
            build_index(root, emb, Path(tmp) / f"idx{i[0]}", batch_size=batch_size, workers=2, progress=False)

        def embed_only():
            waves = [load_audio(p, 16000) for p in files[:64]]
            emb.embed_audio(waves)

        t_dec = median_time(decode_only, repeats)
        t_idx = median_time(index, repeats)
        t_emb = median_time(embed_only, repeats) * len(files) / 64
    print(f"\n### Indexing: {n_clips} FLAC clips of {seconds:g} s at 44.1 kHz -> 16 kHz, HashEmbedder(512), "
          f"batch {batch_size}, 2 decode threads\n")
    print_table(["what", "clips/s", "ratio to decode-only floor"], [
        ("decode only (load_audio, 2 threads) — the floor", f"{n_clips / t_dec:,.1f}", "1.00"),
        ("embed only (HashEmbedder, 1 thread, est.)", f"{n_clips / t_emb:,.1f}", f"{t_dec / t_emb:.2f}"),
        ("build_index (hash + decode + embed + SQLite commit + FAISS save)", f"{n_clips / t_idx:,.1f}",
         f"{t_dec / t_idx:.2f}"),
    ], align="lrr", compact=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-search", action="store_true")
    ap.add_argument("--skip-indexing", action="store_true")
    args = ap.parse_args()
    import faiss
    import torch

    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    if not args.skip_search:
        bench_search(args.sizes, args.dim, args.queries, args.k, args.repeats)
    if not args.skip_indexing:
        bench_indexing(args.clips, args.seconds, args.repeats, args.batch_size)


if __name__ == "__main__":
    main()
