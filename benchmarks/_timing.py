"""Timing and reporting helpers shared by the benchmark scripts.

The scripts run as ``python benchmarks/bench_x.py``, so this folder is on ``sys.path`` and they
import it as ``from _timing import ...``.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable, Iterable, Sequence


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 0,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time (s) of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls: wall time,
    or ``clock=time.process_time`` for this process's CPU time (steadier on a shared machine)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        ts.append(clock() - t0)
    return statistics.median(ts)


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls after one warm-up call (none when repeats == 1),
    and the output of the last call."""
    times, out = [], None
    if repeats > 1:
        fn()
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def synced(fn: Callable[[], object], device) -> Callable[[], object]:
    """``fn`` followed by a CUDA synchronisation when ``device`` is a GPU (wall times then
    cover the queued kernels); ``fn`` itself on the CPU."""
    import torch

    if torch.device(device).type != "cuda":
        return fn

    def run() -> object:
        out = fn()
        torch.cuda.synchronize(device)
        return out

    return run


def matmul_rate(n: int = 1024, repeats: int = 10, warmup: int = 3, dtype=None, device="cpu",
                clock: Callable[[], float] = time.perf_counter) -> float:
    """The machine's torch matmul rate in FLOP/s: an (n, n) x (n, n) product (``dtype``, default
    float32) on ``device``, median of ``repeats`` after ``warmup`` untimed products."""
    import torch  # not at import time: some scripts do not need torch

    dtype = dtype or torch.float32
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    return 2 * n**3 / median_time(synced(lambda: a @ b, device), repeats, warmup, clock)


def load_average() -> str:
    """``"load average at start: X.X"`` (1-minute load average, for the benchmark's header)."""
    return f"load average at start: {os.getloadavg()[0]:.1f}"


def _md_line(cells: Sequence[object]) -> str:
    return "|" + "|".join(f" {c} " if str(c) else " " for c in cells) + "|"


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str = "",
                compact: bool = False) -> None:
    """Print a markdown table; cells are printed with ``str`` (format numbers beforehand).

    Args:
        header: the column titles.
        rows: the rows; a generator is consumed after the header is printed.
        align: one ``l`` (``---``) or ``r`` (``---:``) per column; default all ``l``.
        compact: separator ``|---|---:|`` instead of ``| --- | ---: |``.
    """
    seps = ["---:" if a == "r" else "---" for a in (align or "l" * len(header))]
    print(_md_line(header))
    print("|" + "|".join(seps) + "|" if compact else _md_line(seps))
    for r in rows:
        print(_md_line(r))
