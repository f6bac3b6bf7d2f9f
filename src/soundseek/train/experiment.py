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

from soundseek.config import apply_overrides, from_dict, load_yaml
from soundseek.models.config import Config
from soundseek.fileio import atomic_write_bytes

log = logging.getLogger(__name__)


@dataclass
class RunSpec:
    config: str = ""  # recipe for this row (default: the grid's base), relative to the grid file
    set: list[str] = field(default_factory=list)


@dataclass
class GridConfig:
    name: str = "experiment"
    base: str = ""
    seeds: list[int] = field(default_factory=lambda: [0])
    set: list[str] = field(default_factory=list)
    runs: dict[str, RunSpec] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=lambda: ["t2a.R1", "t2a.R10", "t2a.mAP10", "a2t.R1", "a2t.mAP10"])
    out: str = "results"

    def validate(self) -> None:
        self.runs = {k: from_dict(RunSpec, v) if isinstance(v, dict) else v for k, v in self.runs.items()}
        if not self.runs:
            from soundseek.config import ConfigError

            raise ConfigError("an experiment grid needs at least one entry under runs")


def cell_config(grid: GridConfig, grid_dir: Path, run: str, seed: int) -> Config:
    spec = grid.runs[run]
    recipe = spec.config or grid.base
    cfg = load_yaml(Config, grid_dir / recipe) if recipe else Config()
    out = Path(grid.out) / run / f"seed{seed}"
    return apply_overrides(cfg, [*grid.set, *spec.set, f"train.seed={seed}", f"train.out_dir={out}"])


def _get(metrics: dict[str, Any], key: str) -> float:
    node: Any = metrics
    for part in key.split("."):
        node = node[part]
    return float(node)


def run_grid(path: str | Path, progress: bool = True, only: list[str] | None = None) -> dict[str, Any]:
    from soundseek.train.data import prepare
    from soundseek.train.evaluate import evaluate
    from soundseek.train.loop import Trainer, load_run

    path = Path(path)
    grid = load_yaml(GridConfig, path)
    results: dict[str, dict[int, dict[str, Any]]] = {}
    prepared: dict[str, Any] = {}
    for run in grid.runs:
        if only and run not in only:
            continue
        for seed in grid.seeds:
            cfg = cell_config(grid, path.parent, run, seed)
            done = Path(cfg.train.out_dir) / "test_metrics.json"
            if done.is_file():
                results.setdefault(run, {})[seed] = json.loads(done.read_text())
                continue
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
    table = summary_table(grid, results)
    out = Path(grid.out)
    atomic_write_bytes(out / "results.md", lambda f: f.write(table.encode()))
    atomic_write_bytes(out / "results.json", lambda f: f.write(json.dumps({"grid": str(path), "results": results}, indent=2, default=str).encode()))
    return {"table": table, "results": results}


def summary_table(grid: GridConfig, results: dict[str, dict[int, dict[str, Any]]]) -> str:
    """Rows = runs, columns = metrics as mean +- std over seeds, in percent (ranks as is)."""
    cols = list(grid.metrics)
    extra = sorted({k for r in results.values() for m in r.values() for k in m if k in ("a2t_sk", "t2a_ot", "a2t_ot")})
    for k in extra:
        cols += [f"{k}.R1", f"{k}.mAP10"]
    lines = [f"**{grid.name}** — mean ± std over seeds {grid.seeds}", "",
             "| run | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for run, per_seed in results.items():
        cells = []
        for c in cols:
            vals = [_get(m, c) for m in per_seed.values() if _has(m, c)]
            if not vals:
                cells.append("–")
                continue
            scale = 1.0 if c.endswith(("medR", "meanR")) else 100.0
            a = np.asarray(vals) * scale
            cells.append(f"{a.mean():.1f} ± {a.std(ddof=1) if len(a) > 1 else 0.0:.1f}")
        lines.append(f"| {run} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _has(m: dict[str, Any], key: str) -> bool:
    try:
        _get(m, key)
        return True
    except (KeyError, TypeError):
        return False
