"""A one-off ``soundseek search IDX "explosion"`` in a fresh process, as a ratio to the warm
path (the same query again in a process that already has the model) and to a bare
``python -c "import torch"``, all measured in the same run (median of --repeats fresh
processes each), plus ``--mode text``, which loads no model at all.

    soundseek index ../shared/data/real-sfx-dev/audio --index /tmp/sfx.idx --no-progress
    PYTHONPATH=src python benchmarks/bench_cold_search.py /tmp/sfx.idx --repeats 5
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

WARM = r"""
import sys, time
from soundseek.index.search import Searcher
s = Searcher.open(sys.argv[1])
s.search_text("explosion", k=10)
t = time.perf_counter(); s.search_text("explosion", k=10); print(time.perf_counter() - t)
"""


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr[-500:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("index")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    rows = {
        "python -c 'import torch'": [py, "-c", "import torch"],
        "soundseek search IDX explosion (cold, hybrid)": [py, "-m", "soundseek", "search", args.index, "explosion"],
        "soundseek search IDX explosion --mode text (cold, no model)": [py, "-m", "soundseek", "search", args.index,
                                                                         "explosion", "--mode", "text"],
    }
    med = {name: statistics.median(_wall(cmd) for _ in range(args.repeats)) for name, cmd in rows.items()}
    warm = [float(subprocess.run([py, "-c", WARM, args.index], capture_output=True, text=True, check=True).stdout)
            for _ in range(args.repeats)]
    med["same query, warm process (in-process search only)"] = statistics.median(warm)
    torch_s, warm_s = med["python -c 'import torch'"], med["same query, warm process (in-process search only)"]
    print(f"CPU: {_cpu()} ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f} at the end, "
          f"median of {args.repeats}\n")
    print("| command | seconds | / import torch | / warm query |")
    print("|---|---:|---:|---:|")
    for name, sec in med.items():
        print(f"| {name} | {sec:.3f} | {sec / torch_s:.2f} | {sec / max(warm_s, 1e-9):.0f} |")
    print(json.dumps(med))


if __name__ == "__main__":
    main()
