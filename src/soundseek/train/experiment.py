"""Experiment runner: a grid of recipes x seeds, trained and evaluated on cached features,
summarised as a markdown table of mean +- std (like the papers' tables) and JSON.

A grid file (YAML)::

    name: losses
    base: ../configs/default.yaml        # relative to the grid file
    seeds: [0, 1, 2]
    set: ["data.path=../../shared/data/real-sfx-dev/manifest.jsonl", "train.epochs=15"]
    runs:
      ntxent: {set: ["loss.name=ntxent"]}
      pmr: {config: ../configs/tap-pmr.yaml, set: []}
    metrics: [t2a.R1, t2a.R10, t2a.mAP10, a2t.R1, a2t.mAP10]
    out: results/losses
    claims:                              # optional: paired comparisons with a verdict
      - {source: "002 TAP + PMR", claim: "PMR beats NT-Xent", run: pmr, baseline: ntxent,
         metric: t2a.R1, direction: higher, tol: 1.0, paper: "Clotho T2A R@1 14.9 vs 14.4"}

Claims compare a run with its baseline seed by seed (``metric`` of ``run`` against
``baseline_metric``, default the same, of ``baseline``; the two may be one run, e.g. A2T with
and without the Sinkhorn-Knopp correction) and get a verdict by the rule of
:mod:`soundseek.metrics.paired`. The summary then has one table per ``source``: the runs its
claims name, the paired differences, and one line per claim.

Finished (run, seed) cells are kept (``test_metrics.json``) and skipped on a rerun, so an
interrupted grid continues where it stopped.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from soundseek.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from soundseek.fileio import atomic_write_bytes
from soundseek.metrics.paired import DIRECTIONS, paired_difference, verdict
from soundseek.models.config import Config

log = logging.getLogger(__name__)


@dataclass
class RunSpec:
    config: str = ""  # recipe for this row (default: the grid's base), relative to the grid file
    set: list[str] = field(default_factory=list)


@dataclass
class ClaimSpec:
    source: str = ""  # which paper, e.g. "002 TAP + PMR": one table per source
    claim: str = ""  # what the paper says, in one line
    run: str = ""  # the variant
    baseline: str = ""  # its baseline (may equal ``run`` when two metrics of one model are compared)
    metric: str = "t2a.R1"  # metric of ``run``
    baseline_metric: str = ""  # metric of ``baseline`` (default: ``metric``)
    direction: str = "higher"  # higher | lower | equal: what the paper claims for run vs baseline
    tol: float = 1.0  # "pinned near 0" band for the verdict, in the table's unit (points of percent)
    paper: str = ""  # the paper's own number, quoted

    def validate(self) -> None:
        if not self.run or not self.baseline:
            raise ConfigError("a claim needs a run and a baseline")
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"claim direction {self.direction!r} is not one of {', '.join(DIRECTIONS)}")
        if not (self.tol >= 0):
            raise ConfigError(f"claim tol must be >= 0, got {self.tol!r}")
        if self.run == self.baseline and (self.baseline_metric or self.metric) == self.metric:
            raise ConfigError(f"claim {self.claim or self.run!r} compares {self.metric} of {self.run} with itself")


@dataclass
class GridConfig:
    name: str = "experiment"
    base: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    set: list[str] = field(default_factory=list)
    runs: dict[str, RunSpec] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["t2a.R1", "t2a.R10", "t2a.mAP10", "a2t.R1", "a2t.mAP10"])
    out: str = "results"
    claims: list[ClaimSpec] = field(default_factory=list)
    level: float = 0.95  # confidence level of the paired intervals

    def validate(self) -> None:
        self.runs = {k: from_dict(RunSpec, v) if isinstance(v, dict) else v for k, v in self.runs.items()}
        self.claims = [from_dict(ClaimSpec, c) if isinstance(c, dict) else c for c in self.claims]
        if not self.runs:
            raise ConfigError("an experiment grid needs at least one entry under runs")
        for c in self.claims:
            for r in (c.run, c.baseline):
                if r not in self.runs:
                    raise ConfigError(f"claim {c.claim or c.run!r} names run {r!r}, which is not in runs. Valid: {', '.join(self.runs)}")
        if not 0 < self.level < 1:
            raise ConfigError(f"level must be in (0, 1), got {self.level!r}")


def cell_config(grid: GridConfig, grid_dir: Path, run: str, seed: int, extra: list[str] | None = None) -> Config:
    """The recipe of one cell: base (or the run's config), the grid's ``set``, the run's ``set``,
    then ``extra`` (command-line ``--set``), the seed and the cell's folder."""
    spec = grid.runs[run]
    recipe = spec.config or grid.base
    cfg = load_yaml(Config, grid_dir / recipe) if recipe else Config()
    out = Path(grid.out) / run / f"seed{seed}"
    return apply_overrides(cfg, [*grid.set, *spec.set, *(extra or []), f"train.seed={seed}", f"train.out_dir={out}"])


def _cell_identity(cfg: Config) -> dict[str, Any]:
    """What makes a cell's result: the whole recipe but its progress display."""
    d = to_dict(cfg)
    d.get("train", {}).pop("progress", None)
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def load_grid(path: str | Path, sets: list[str] | None = None) -> GridConfig:
    """The grid file; ``sets`` are ``key=value`` overrides of the grid's own keys
    (``out=...``, ``seeds=[0,1]``, ``name=...``)."""
    grid = load_yaml(GridConfig, path)
    return apply_overrides(grid, list(sets or [])) if sets else grid


def _get(metrics: dict[str, Any], key: str) -> float:
    node: Any = metrics
    for part in key.split("."):
        node = node[part]
    return float(node)


def run_grid(path: str | Path, progress: bool = True, only: list[str] | None = None,
             sets: list[str] | None = None, grid_sets: list[str] | None = None) -> dict[str, Any]:
    """Train and evaluate every (run, seed) cell not finished yet; ``sets`` override every
    cell's recipe (e.g. ``data.path=...``), ``grid_sets`` the grid's keys (e.g. ``out=...``).
    A finished cell whose recipe differs from the one asked for is an error, never reused."""
    import time

    from soundseek.train.data import prepare
    from soundseek.train.evaluate import evaluate
    from soundseek.train.loop import Trainer, load_run

    path = Path(path)
    grid = load_grid(path, grid_sets)
    if only:
        unknown = [r for r in only if r not in grid.runs]
        if unknown:
            raise ConfigError(f"--only {unknown[0]!r} is not a run of {path}. Valid: {', '.join(grid.runs)}")
    results: dict[str, dict[int, dict[str, Any]]] = {}
    prepared: dict[str, Any] = {}
    started = time.monotonic()
    trained = 0
    for run in grid.runs:
        if only and run not in only:
            continue
        for seed in grid.seeds:
            cfg = cell_config(grid, path.parent, run, seed, sets)
            done = Path(cfg.train.out_dir) / "test_metrics.json"
            ident = Path(cfg.train.out_dir) / "cell.json"
            want = _cell_identity(cfg)
            if ident.is_file() and json.loads(ident.read_text()) != want:
                raise ConfigError(f"{cfg.train.out_dir} holds a cell trained with another recipe; "
                                  f"give the grid another folder (--grid-set out=DIR) or remove it")
            if done.is_file():
                results.setdefault(run, {})[seed] = json.loads(done.read_text())
                continue
            atomic_write_bytes(ident, lambda f: f.write(json.dumps(want, indent=1, sort_keys=True).encode()))
            cfg.train.progress = progress and cfg.train.progress
            key = json.dumps([cfg.data.__dict__, cfg.encoders.__dict__, cfg.train.seed if cfg.data.noise else 0], sort_keys=True, default=str)
            if key not in prepared:
                prepared[key] = prepare(cfg, progress=progress)
            data = prepared[key]
            log.info("experiment %s: %s seed %d", grid.name, run, seed)
            Trainer(cfg, data).fit(resume=True)
            model, _, _ = load_run(Path(cfg.train.out_dir) / "best.pt")
            e = cfg.eval
            m = evaluate(model, data, e.split, chunk=e.chunk, sk=e.sk, sk_iter=e.sk_iter, sk_tau=e.sk_tau,
                         sk_split=cfg.data.train_split, ot=e.ot, ot_reg=e.ot_reg)
            atomic_write_bytes(done, lambda f: f.write(json.dumps(m, indent=2).encode()))
            results.setdefault(run, {})[seed] = m
            trained += 1
    elapsed = time.monotonic() - started
    table = summary_table(grid, results)
    claims = claim_results(grid, results)
    if claims:
        table += "\n" + claims_tables(grid, results, claims)
    out = Path(grid.out)
    atomic_write_bytes(out / "results.md", lambda f: f.write(table.encode()))
    atomic_write_bytes(out / "results.json", lambda f: f.write(json.dumps(
        {"grid": str(path), "sets": list(sets or []), "grid_sets": list(grid_sets or []), "results": results,
         "claims": claims, "cells_trained": trained, "seconds": round(elapsed, 1)}, indent=2, default=str).encode()))
    return {"table": table, "results": results, "claims": claims, "cells_trained": trained, "seconds": elapsed}


def _scale(metric: str) -> float:
    """Recalls and mAP are shown in percent; ranks and the modality gap as they are."""
    return 1.0 if metric.endswith(("medR", "meanR", "modality_gap")) else 100.0


def _fmt(metric: str, x: float) -> str:
    return f"{x:.3f}" if metric.endswith("modality_gap") else f"{x:.1f}"


def _values(per_seed: dict[int, dict[str, Any]], metric: str) -> dict[int, float]:
    return {s: _get(m, metric) * _scale(metric) for s, m in per_seed.items() if _has(m, metric)}


def _mean_std(metric: str, vals: list[float]) -> str:
    if not vals:
        return "–"
    a = np.asarray(vals)
    return f"{_fmt(metric, a.mean())} ± {_fmt(metric, a.std(ddof=1) if len(a) > 1 else 0.0)}"


def summary_table(grid: GridConfig, results: dict[str, dict[int, dict[str, Any]]],
                  runs: list[str] | None = None, cols: list[str] | None = None, title: str | None = None) -> str:
    """Rows = runs, columns = metrics as mean +- std over seeds, in percent (ranks and the
    modality gap as is)."""
    if cols is None:
        cols = list(grid.metrics)
        extra = sorted({k for r in results.values() for m in r.values() for k in m if k in ("a2t_sk", "t2a_ot", "a2t_ot")})
        for k in extra:
            cols += [f"{k}.R1", f"{k}.mAP10"]
    lines = [title or f"**{grid.name}** — mean ± std over seeds {grid.seeds}", "",
             "| run | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for run in runs if runs is not None else list(results):
        per_seed = results.get(run, {})
        cells = [_mean_std(c, list(_values(per_seed, c).values())) for c in cols]
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def claim_results(grid: GridConfig, results: dict[str, dict[int, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each claim's paired comparison over the seeds both runs finished, and its verdict."""
    out = []
    for c in grid.claims:
        bm = c.baseline_metric or c.metric
        a = _values(results.get(c.run, {}), c.metric)
        b = _values(results.get(c.baseline, {}), bm)
        seeds = [s for s in grid.seeds if s in a and s in b]
        row: dict[str, Any] = {"source": c.source, "claim": c.claim, "run": c.run, "baseline": c.baseline,
                               "metric": c.metric, "baseline_metric": bm, "direction": c.direction, "tol": c.tol,
                               "paper": c.paper, "seeds": seeds}
        if seeds:
            p = paired_difference([a[s] for s in seeds], [b[s] for s in seeds], level=grid.level)
            row.update(run_mean=float(np.mean([a[s] for s in seeds])), baseline_mean=float(np.mean([b[s] for s in seeds])),
                       diffs=list(p.diffs), mean=p.mean, lo=p.lo, hi=p.hi, excludes_zero=p.excludes_zero,
                       verdict=verdict(p, c.direction, c.tol))
        else:
            row.update(diffs=[], verdict="inconclusive")
        out.append(row)
    return out


def _interval(metric: str, r: dict[str, Any]) -> str:
    if not r.get("diffs"):
        return "–"
    if len(r["diffs"]) < 2:
        return f"{r['mean']:+.{3 if metric.endswith('modality_gap') else 1}f}"
    d = 3 if metric.endswith("modality_gap") else 1
    return f"{r['mean']:+.{d}f} [{r['lo']:+.{d}f}, {r['hi']:+.{d}f}]"


def claims_tables(grid: GridConfig, results: dict[str, dict[int, dict[str, Any]]], claims: list[dict[str, Any]]) -> str:
    """Per source: mean +- std of the runs its claims name (T2A and A2T R@1, R@10, mAP@10, and the
    claims' own metrics), then one line per claim with the per-seed differences, their t
    interval and the verdict."""
    pct = int(round(100 * grid.level))
    parts = []
    sources = list(dict.fromkeys(c["source"] for c in claims))
    for src in sources:
        mine = [c for c in claims if c["source"] == src]
        runs = list(dict.fromkeys(r for c in mine for r in (c["baseline"], c["run"])))
        runs = [r for r in grid.runs if r in runs]
        cols = ["t2a.R1", "t2a.R10", "t2a.mAP10", "a2t.R1", "a2t.R10", "a2t.mAP10"]
        for c in mine:
            for m in (c["metric"], c["baseline_metric"]):
                if m not in cols:
                    cols.append(m)
        parts.append(summary_table(grid, results, runs=runs, cols=cols,
                                   title=f"**{src}** — mean ± std over seeds {grid.seeds}"))
        lines = ["", f"| claim | run vs baseline | metric | paper | per-seed Δ | mean Δ [{pct} % t-interval] | verdict |",
                 "|---|---|---|---|---|---|---|"]
        for c in mine:
            metric = c["metric"] if c["metric"] == c["baseline_metric"] else f"{c['metric']} vs {c['baseline_metric']}"
            d = 3 if c["metric"].endswith("modality_gap") else 1
            diffs = ", ".join(f"{x:+.{d}f}" for x in c["diffs"]) or "–"
            want = {"higher": "higher", "lower": "lower", "equal": f"within ±{c['tol']:g}"}[c["direction"]]
            lines.append(f"| {c['claim']} (claimed: {want}) | {c['run']} vs {c['baseline']} | {metric} | {c['paper'] or '–'} | "
                         f"{diffs} | {_interval(c['metric'], c)} | **{c['verdict']}** |")
        parts.append("\n".join(lines) + "\n")
    rule = (f"Verdicts: **held** when the {pct} % t-interval of the paired per-seed differences excludes 0 on "
            f"the paper's side; **not held** when it excludes 0 on the other side or lies entirely within "
            f"± tol of 0 (tol per claim, in the metric's unit); **inconclusive** otherwise. For a claim of "
            f"parity (within ± tol): held when the interval lies within ± tol, not held when it excludes 0.\n")
    return "\n".join(parts) + "\n" + rule


def _has(m: dict[str, Any], key: str) -> bool:
    try:
        _get(m, key)
        return True
    except (KeyError, TypeError):
        return False
