"""Where a one-off ``soundseek search`` spends its time, cold (a fresh process that loads the
model) and warm (``--server`` asking a running ``soundseek serve``), with the shipped model.

Breakdown: a fresh process imports and loads step by step, timing each (python start-up is
measured as ``python -c pass``). Totals: the real command's wall time, median of --repeats
fresh processes. Reference in the same run: interpreter start-up and the GEMM rate.

    soundseek index ../shared/data/real-sfx-dev/audio --index /tmp/sfx.idx --no-progress
    PYTHONPATH=src python benchmarks/bench_cli.py /tmp/sfx.idx --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _timing import load_average, matmul_rate, print_table

STAGES = r"""
import json, sys, time
t = [time.perf_counter()]
marks = []
def mark(name):
    t.append(time.perf_counter()); marks.append((name, t[-1] - t[-2]))
from soundseek.cli.main import build_parser
build_parser("search"); mark("import soundseek CLI + parser")
import torch; mark("import torch")
import faiss; mark("import faiss")
import transformers; mark("import transformers")
from soundseek.pipeline import Pipeline
mark("import soundseek model code")
p = Pipeline.load(None); mark("load the model (checkpoint, aisfx, MiniLM)")
from soundseek.index.search import Searcher
s = Searcher(sys.argv[1], p); mark("open the index (SQLite, FAISS)")
torch.set_num_threads(1)  # as `soundseek search` does for text queries
s.search_text("rain", k=10); mark("first query (embed + search)")
s.search_text("glass breaking", k=10); mark("second query, same process")
print(json.dumps(marks))
"""


def _wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr[-500:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index", help="an index built with the shipped model")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    py = sys.executable
    print(load_average())
    gflops = matmul_rate() / 1e9
    startup = statistics.median(_wall([py, "-c", "pass"], env) for _ in range(args.repeats))
    runs = []
    for _ in range(max(1, args.repeats // 2)):
        out = subprocess.run([py, "-c", STAGES, args.index], env=env, capture_output=True, text=True, check=True)
        runs.append(dict(json.loads(out.stdout.strip().splitlines()[-1])))
    stages = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    cold = statistics.median(_wall([py, "-m", "soundseek", "search", args.index, "rain", "-k", "10"], env)
                             for _ in range(args.repeats))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([py, "-m", "soundseek", "-q", "serve", args.index, "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        import urllib.request

        url = f"http://127.0.0.1:{port}"
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(url + "/api/health", timeout=1).read()
                break
            except OSError:
                if time.time() - t0 > 120:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.2)
        urllib.request.urlopen(url + "/api/search?q=warm+up", timeout=30).read()
        warm = statistics.median(_wall([py, "-m", "soundseek", "search", "-", "rain", "-k", "10", "--server", url], env)
                                 for _ in range(args.repeats))
        http = []
        for q in ("rain", "glass breaking", "dog bark", "sword hit", "door creak") * 4:
            t0 = time.perf_counter()
            urllib.request.urlopen(url + "/api/search?" + urllib.parse.urlencode({"q": q}), timeout=30).read()
            http.append(time.perf_counter() - t0)
    finally:
        server.terminate()
        server.wait(20)
    print(f"\nmachine floor: python start-up {1000 * startup:.0f} ms; float32 GEMM {gflops:.0f} GFLOP/s\n")
    print("### Cold `soundseek search`: where the time goes (one fresh process, step by step)\n")
    rows = [("python start-up (`python -c pass`)", f"{startup:.2f}")] + [(k, f"{v:.2f}") for k, v in stages.items()]
    total = startup + sum(v for k, v in stages.items() if not k.startswith("second"))
    rows.append(("sum up to the first answer", f"{total:.2f}"))
    print_table(["stage", "seconds"], rows, align="lr", compact=True)
    print("\n### Totals (median of fresh processes)\n")
    print_table(["command", "seconds"], [
        ("`soundseek search IDX rain` (cold: loads the model)", f"{cold:.2f}"),
        ("`soundseek search - rain --server URL` (warm server)", f"{warm:.2f}"),
        ("HTTP GET /api/search alone, warm server (median of 20)", f"{statistics.median(http):.3f}"),
    ], align="lr", compact=True)
    print(f"\nwarm / cold: {warm / cold:.2f}; warm CLI minus python start-up: {warm - startup:.2f} s")


if __name__ == "__main__":
    import urllib.parse  # noqa: F401  (used above)

    main()
