"""Load test of the HTTP service on loopback: N concurrent clients, bounded count and time.

Starts ``soundseek.service`` in a subprocess on a free 127.0.0.1 port over a synthetic index
(generated clips, HashEmbedder), then runs --clients concurrent httpx clients issuing
--requests requests (text searches; every 10th a ranged audio fetch). Reference measured in
the same run: GET /api/health (framework floor).

    PYTHONPATH=src python benchmarks/bench_load.py --clients 50 --requests 3000
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
from soundseek.index import HashEmbedder
from soundseek.service.app import serve
serve(sys.argv[1], HashEmbedder(dim=512), host="127.0.0.1", port=int(sys.argv[2]))
"""
WORDS = "dog bark rain thunder low high mid engine bird door knock water wind crowd bell siren".split()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run(base: str, clients: int, n_requests: int, max_seconds: float, kind: str, ids: list[int]):
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
    ap.add_argument("--items", type=int, default=500, help="clips in the synthetic index")
    args = ap.parse_args()
    import soundfile as sf
    import torch

    from soundseek.index import HashEmbedder, build_index

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "clips"
        root.mkdir()
        rng = np.random.default_rng(0)
        for i in range(args.items):
            f = 100 * 1.01 ** i
            t = np.arange(8000) / 16000
            x = 0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size)
            sf.write(root / f"c{i:05d}.wav", x.astype(np.float32), 16000)
        build_index(root, HashEmbedder(dim=512), Path(tmp) / "idx", progress=False)
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
        proc = subprocess.Popen([sys.executable, "-c", SERVER, str(Path(tmp) / "idx"), str(port)], env=env,
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
            ids = list(range(1, args.items + 1))
            rows = []
            for kind in ("health", "search"):
                lat, errors, wall = asyncio.run(_run(base, args.clients, args.requests, args.max_seconds, kind, ids))
                rows.append((kind, len(lat), errors, wall, lat))
        finally:
            proc.terminate()
            proc.wait(10)
    print(f"\n### HTTP load: {args.clients} concurrent clients, loopback, {args.items}-clip index, 512-d FAISS flat\n")
    labels = {"health": "GET /api/health (reference)", "search": "search (90% GET /api/search, 10% ranged audio)"}
    print_table(["endpoint", "requests", "errors", "req/s", "p50 ms", "p99 ms"],
                [(labels[kind], n, f"{sum(errors.values())} {errors or ''}", f"{n / wall:,.0f}",
                  f"{1000 * np.percentile(lat, 50):.1f}", f"{1000 * np.percentile(lat, 99):.1f}")
                 for kind, n, errors, wall, lat in rows], align="lrrrrr", compact=True)
    h, s = rows
    print(f"\nratio search/health throughput: {(s[1] / s[3]) / (h[1] / h[3]):.2f}")


if __name__ == "__main__":
    main()
