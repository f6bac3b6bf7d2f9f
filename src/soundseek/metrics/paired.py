"""Paired comparisons over seeds, and the verdict on a paper's claim.

Two recipes trained with the same seeds (same data order, same initialisation where the
architectures agree) give paired results ``a[s]`` (the variant) and ``b[s]`` (its baseline).
The comparison is on the per-seed differences ``d[s] = a[s] - b[s]``: their mean and a
Student-t confidence interval ``mean +- t_{(1+level)/2, n-1} * sd(d) / sqrt(n)``
(``sd`` with ddof 1; ``scipy.stats.t``). With 3 seeds and level 0.95 the t quantile is 4.30,
so only differences that are large against their seed-to-seed spread exclude 0.

The verdict rule (:func:`verdict`) for a claim that the variant is better (``higher``),
worse (``lower``) or on par (``equal``) on one metric:

- ``higher`` / ``lower``: **held** when the interval excludes 0 on the paper's side;
  **not held** when it excludes 0 on the other side, or when the whole interval lies within
  ``+- tol`` of 0 (the difference is pinned near 0, so a gain larger than ``tol`` is ruled
  out); otherwise **inconclusive**.
- ``equal``: **held** when the whole interval lies within ``+- tol``; **not held** when it
  excludes 0; otherwise **inconclusive**.

Fewer than two paired seeds give no interval: **inconclusive**.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["DIRECTIONS", "VERDICTS", "Paired", "paired_difference", "verdict"]

DIRECTIONS = ("higher", "lower", "equal")
VERDICTS = ("held", "not held", "inconclusive")


@dataclass(frozen=True)
class Paired:
    diffs: tuple[float, ...]  # per seed, variant - baseline
    mean: float
    lo: float  # interval bounds (nan with fewer than two seeds)
    hi: float
    level: float

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def excludes_zero(self) -> bool:
        return self.n >= 2 and (self.lo > 0 or self.hi < 0)


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Paired:
    """Mean of ``a - b`` (paired by position) and its two-sided t interval at ``level``."""
    from scipy import stats

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired samples must be two 1-D sequences of equal length, got shapes {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("a paired comparison needs at least one pair")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired samples must be finite")
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    d = a - b
    mean = float(d.mean())
    if d.size < 2:
        return Paired(tuple(float(x) for x in d), mean, math.nan, math.nan, float(level))
    half = float(stats.t.ppf((1 + level) / 2, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size))
    return Paired(tuple(float(x) for x in d), mean, mean - half, mean + half, float(level))


def verdict(p: Paired, direction: str, tol: float) -> str:
    """``held`` / ``not held`` / ``inconclusive`` for a claim in ``direction`` (see module doc)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got {direction!r}")
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    if p.n < 2:
        return "inconclusive"
    pinned = -tol <= p.lo and p.hi <= tol
    if direction == "equal":
        if pinned:
            return "held"
        return "not held" if p.excludes_zero else "inconclusive"
    sign = 1.0 if direction == "higher" else -1.0
    lo, hi = sorted((sign * p.lo, sign * p.hi))  # the interval with the paper's side positive
    if lo > 0:
        return "held"
    if hi < 0 or pinned:
        return "not held"
    return "inconclusive"
