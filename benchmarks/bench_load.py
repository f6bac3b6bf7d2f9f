"""Load test of the HTTP service on loopback: N concurrent clients, bounded count and time.

Starts ``soundseek.service`` in a subprocess on a free 127.0.0.1 port, then runs --clients
concurrent httpx clients per phase: GET /api/health (reference: the framework floor), text
searches (every 10th request a ranged audio fetch), and audio-example searches (uploads of
indexed clips). Reports p50/p99 latency, errors, throughput, and the server's resident memory
(VmRSS) after warm-up and after each phase (growth over the run).

``--model fake`` (default): a synthetic index (generated clips, HashEmbedder), measures the
service alone. ``--model default --index DIR``: the shipped model over an index built with it
(``soundseek index FOLDER --index DIR``), measures what users get.

    PYTHONPATH=src python benchmarks/bench_load.py --clients 50 --requests 3000
    soundseek index ../shared/data/real-sfx-dev/audio --index /tmp/sfx.idx --no-progress
    PYTHONPATH=src python benchmarks/bench_load.py --model default --index /tmp/sfx.idx \
        --clients 50 --requests 2000 --audio-requests 300
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _timing import print_table

SERVER = """
import sys
from soundseek.service.app import serve
if sys.argv[3] == "fake":
    from soundseek.index import HashEmbedder
    emb = HashEmbedder(dim=512)
else:
    from soundseek.pipeline import Pipeline
    emb = Pipeline.load(None if sys.argv[3] == "default" else sys.argv[3])
serve(sys.argv[1], emb, host="127.0.0.1", port=int(sys.argv[2]))
"""
WORDS = "dog bark rain thunder low high mid engine bird door knock water wind crowd bell siren".split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _run(base: str, clients: int, n_requests: int, max_seconds: float, kind: str, ids: list[int],
               uploads: list[tuple[str, bytes]] | None = None):
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(n_requests))
    rng = np.random.default_rng(0)
    deadline = time.perf_counter() + max_seconds

    async def worker(client: httpx.AsyncClient) -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                if kind == "health":
                    r = await client.get("/api/health")
                elif kind == "audio":
                    name, data = uploads[i % len(uploads)]
                    r = await client.post("/api/search/audio", files={"file": (name, data)}, data={"k": "10"})
                elif i % 10 == 9:
                    r = await client.get(f"/api/clips/{ids[i % len(ids)]}/audio", headers={"Range": "bytes=0-4095"})
                else:
                    q = " ".join(rng.choice(WORDS, size=3))
                    r = await client.get("/api/search", params={"q": q, "k": 10})
                if r.status_code not in (200, 206):
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
            lat.append(time.perf_counter() - t0)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(clients)))
        wall = time.perf_counter() - t0
    return np.asarray(lat), errors, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=120.0, help="stop each phase after this long")
    ap.add_argument("--items", type=int, default=500, help="clips in the synthetic index (--model fake)")
    ap.add_argument("--model", default="fake", help="fake (HashEmbedder), default (the shipped model) or a checkpoint")
    ap.add_argument("--index", default=None, help="with a real model: an index built with it")
    ap.add_argument("--audio-requests", type=int, default=300, help="audio-example uploads in the audio phase")
    args = ap.parse_args()
    import soundfile as sf
    import torch

    from soundseek.index import HashEmbedder, build_index

    torch.set_num_threads(2)
    if args.model != "fake" and not args.index:
        ap.error("--model other than fake needs --index (an index built with that model)")
    with tempfile.TemporaryDirectory() as tmp:
        if args.model == "fake":
            root = Path(tmp) / "clips"
            root.mkdir()
            rng = np.random.default_rng(0)
            for i in range(args.items):
                f = 100 * 1.01 ** i
                t = np.arange(8000) / 16000
                x = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)
                sf.write(root / f"c{i:05d}.wav", x.astype(np.float32), 16000)
            index = Path(tmp) / "idx"
            build_index(root, HashEmbedder(dim=512), index, progress=False)
        else:
            index = Path(args.index)
        from soundseek.index.store import Store

        store = Store(index)
        rows = store.con.execute("SELECT id, path FROM items ORDER BY id").fetchall()
        store.close()
        ids = [int(r[0]) for r in rows]
        uploads = [(Path(p).name, Path(p).read_bytes()) for _, p in rows[:: max(1, len(rows) // 40)]
                   if p and Path(p).is_file() and Path(p).stat().st_size < 2 << 20][:40]
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        proc = subprocess.Popen([sys.executable, "-m", "soundseek", "-q", "--version"], env=env,
                                stdout=subprocess.DEVNULL)  # warm the page cache for the imports
        proc.wait()
        t_start = time.time()
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(index), str(port), args.model], env=env,
                                stdout=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            import httpx

            t0 = time.time()
            while time.time() - t0 < 60:
                try:
                    if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                raise RuntimeError("server did not start")
            startup = time.time() - t_start
            httpx.get(base + "/api/search", params={"q": "warm up"}, timeout=60)
            if uploads:
                httpx.post(base + "/api/search/audio", files={"file": uploads[0]}, timeout=60)
            rss = [("after start-up and one query of each kind", _rss_mib(proc.pid))]
            rows = []
            phases = [("health", args.requests), ("search", args.requests)]
            if uploads:
                phases.append(("audio", args.audio_requests))
            for kind, n in phases:
                lat, errors, wall = asyncio.run(_run(base, args.clients, n, args.max_seconds, kind, ids, uploads))
                rows.append((kind, len(lat), errors, wall, lat))
                rss.append((f"after the {kind} phase", _rss_mib(proc.pid)))
        finally:
            proc.terminate()
            proc.wait(10)
    what = "fake 512-d embedder" if args.model == "fake" else f"model {args.model}"
    print(f"\n### HTTP load: {args.clients} concurrent clients, loopback, {len(ids)}-clip index, {what}, "
          f"FAISS flat (server start-up {startup:.1f} s)\n")
    labels = {"health": "GET /api/health (reference)", "search": "text search (90% GET /api/search, 10% ranged audio)",
              "audio": f"audio-example search (POST /api/search/audio, {len(uploads)} indexed clips)"}
    print_table(["endpoint", "requests", "errors", "req/s", "p50 ms", "p99 ms"],
                [(labels[kind], n, f"{sum(errors.values())} {errors or ''}", f"{n / wall:,.1f}",
                  f"{1000 * np.percentile(lat, 50):.1f}", f"{1000 * np.percentile(lat, 99):.1f}")
                 for kind, n, errors, wall, lat in rows], align="lrrrrr", compact=True)
    h, s = rows[0], rows[1]
    print(f"\nratio text-search/health throughput: {(s[1] / s[3]) / (h[1] / h[3]):.2f}")
    print("\nserver resident memory (VmRSS):")
    for label, mib in rss:
        print(f"  {label}: {mib:,.0f} MiB")
    print(f"  growth over the run: {rss[-1][1] - rss[0][1]:+,.0f} MiB")


if __name__ == "__main__":
    main()
