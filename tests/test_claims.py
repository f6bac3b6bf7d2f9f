"""Paired comparisons over seeds, claim verdicts, and the experiment runner's claim tables."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from soundseek.config import ConfigError
from soundseek.metrics.paired import Paired, paired_difference, verdict


def test_interval_matches_scipy_t_interval():
    stats = pytest.importorskip("scipy.stats")
    g = np.random.default_rng(0)
    for n in (2, 3, 5, 12):
        a, b = g.normal(30, 2, n), g.normal(29, 2, n)
        for level in (0.9, 0.95, 0.99):
            p = paired_difference(a, b, level)
            d = a - b
            lo, hi = stats.t.interval(level, n - 1, loc=d.mean(), scale=stats.sem(d))
            assert p.mean == pytest.approx(d.mean()) and p.lo == pytest.approx(lo) and p.hi == pytest.approx(hi)
            assert p.diffs == pytest.approx(tuple(d))


def test_interval_by_hand_for_three_seeds():
    # diffs 1, 2, 3: mean 2, sd 1, t_{0.975, 2} = 4.302652729911275
    p = paired_difference([11, 12, 13], [10, 10, 10])
    half = 4.302652729911275 / math.sqrt(3)
    assert (p.mean, p.lo, p.hi) == pytest.approx((2.0, 2 - half, 2 + half))
    assert not p.excludes_zero  # 2 - 2.48 < 0: three seeds need a consistent difference


def _p(lo, hi, n=3):
    return Paired(tuple([0.0] * n), (lo + hi) / 2, lo, hi, 0.95)


@pytest.mark.parametrize("lo,hi,direction,tol,expected", [
    (0.5, 3.0, "higher", 1.0, "held"),
    (-3.0, -0.5, "higher", 1.0, "not held"),  # excludes 0 the other way
    (-0.8, 0.9, "higher", 1.0, "not held"),  # pinned within +-tol: a gain above tol is ruled out
    (-0.8, 1.2, "higher", 1.0, "inconclusive"),
    (-4.0, 5.0, "higher", 1.0, "inconclusive"),
    (-3.0, -0.5, "lower", 1.0, "held"),
    (0.5, 3.0, "lower", 1.0, "not held"),
    (-0.5, 0.5, "lower", 1.0, "not held"),
    (-2.0, 0.5, "lower", 1.0, "inconclusive"),
    (-0.5, 0.5, "equal", 1.0, "held"),
    (0.5, 3.0, "equal", 1.0, "not held"),
    (-3.0, 0.5, "equal", 1.0, "inconclusive"),
    (-0.5, 0.5, "higher", 0.0, "inconclusive"),  # tol 0: nothing is pinned
])
def test_verdict_rule_on_synthetic_intervals(lo, hi, direction, tol, expected):
    assert verdict(_p(lo, hi), direction, tol) == expected


def test_verdict_on_synthetic_seeds():
    base = [20.0, 22.0, 21.0]
    assert verdict(paired_difference([23.0, 25.1, 24.2], base), "higher", 1.0) == "held"  # +3 +-0.1
    assert verdict(paired_difference([17.0, 19.1, 18.2], base), "higher", 1.0) == "not held"
    assert verdict(paired_difference([26.0, 19.0, 24.0], base), "higher", 1.0) == "inconclusive"  # +6, -3, +3
    assert verdict(paired_difference([20.1, 21.9, 21.0], base), "higher", 1.0) == "not held"  # pinned at 0
    assert verdict(paired_difference([30.0], [20.0]), "higher", 1.0) == "inconclusive"  # one seed: no interval


@pytest.mark.parametrize("a,b,msg", [([1, 2], [1], "equal length"), ([], [], "at least one"),
                                     ([1, np.nan], [1, 2], "finite"), ([[1]], [[1]], "1-D")])
def test_bad_paired_inputs(a, b, msg):
    with pytest.raises(ValueError, match=msg):
        paired_difference(a, b)


def test_bad_verdict_arguments():
    with pytest.raises(ValueError, match="higher, lower, equal"):
        verdict(_p(0, 1), "better", 1.0)
    with pytest.raises(ValueError, match="tol"):
        verdict(_p(0, 1), "higher", -1.0)


GRID = """
name: toy-claims
seeds: [0, 1, 2]
set: ["train.epochs=2", "train.batch_size=16", "train.progress=false", "train.tensorboard=false",
      "model.embed_dim=16", "optim.lr=3e-3"]
runs:
  ntxent: {set: []}
  mltm: {set: ["loss.name=mltm", "loss.options={reg: 0.05, ground: euclidean}", "eval.ot=true"]}
metrics: [t2a.R1, t2a.mAP10, a2t.R1, modality_gap]
out: OUT
claims:
  - {source: "003 m-LTM", claim: "OT loss beats NT-Xent", run: mltm, baseline: ntxent, metric: t2a.mAP10,
     direction: higher, paper: "Clotho T2A R@1 16.7 vs 14.4"}
  - {source: "003 m-LTM", claim: "OT-plan ranking beats cosine", run: mltm, baseline: mltm, metric: t2a_ot.mAP10,
     baseline_metric: t2a.mAP10, direction: higher}
  - {source: "003 m-LTM", claim: "smaller modality gap", run: mltm, baseline: ntxent, metric: modality_gap,
     direction: lower, tol: 0.01}
"""


def _grid(tmp_path, monkeypatch, text=GRID):
    from test_train import toy_prepared

    import soundseek.train.data as train_data

    monkeypatch.setattr(train_data, "prepare", lambda cfg, progress=True, towers=None: toy_prepared())
    path = tmp_path / "grid.yaml"
    path.write_text(text.replace("OUT", str(tmp_path / "out")))
    return path


def test_grid_claims_report_paired_differences_of_the_cells(tmp_path, monkeypatch):
    from soundseek.train.experiment import run_grid

    path = _grid(tmp_path, monkeypatch)
    out = run_grid(path, progress=False)
    assert out["cells_trained"] == 6
    cells = {(r, s): json.loads((tmp_path / "out" / r / f"seed{s}" / "test_metrics.json").read_text())
             for r in ("ntxent", "mltm") for s in (0, 1, 2)}
    c0, c1, c2 = out["claims"]
    want = [100 * (cells["mltm", s]["t2a"]["mAP10"] - cells["ntxent", s]["t2a"]["mAP10"]) for s in (0, 1, 2)]
    assert c0["diffs"] == pytest.approx(want)
    p = paired_difference([100 * cells["mltm", s]["t2a"]["mAP10"] for s in (0, 1, 2)],
                          [100 * cells["ntxent", s]["t2a"]["mAP10"] for s in (0, 1, 2)])
    assert (c0["lo"], c0["hi"]) == pytest.approx((p.lo, p.hi)) and c0["verdict"] == verdict(p, "higher", 1.0)
    want = [100 * (cells["mltm", s]["t2a_ot"]["mAP10"] - cells["mltm", s]["t2a"]["mAP10"]) for s in (0, 1, 2)]
    assert c1["diffs"] == pytest.approx(want)
    want = [cells["mltm", s]["modality_gap"] - cells["ntxent", s]["modality_gap"] for s in (0, 1, 2)]
    assert c2["diffs"] == pytest.approx(want)  # the gap is not scaled to percent
    table = out["table"]
    assert "**003 m-LTM**" in table and "| OT loss beats NT-Xent (claimed: higher) | mltm vs ntxent | t2a.mAP10 |" in table
    assert "t2a_ot.mAP10 vs t2a.mAP10" in table and "Clotho T2A R@1 16.7 vs 14.4" in table
    assert all(f"**{c['verdict']}**" in table for c in out["claims"])
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [c["verdict"] for c in saved["claims"]] == [c["verdict"] for c in out["claims"]]
    # a rerun trains nothing and reports the same
    again = run_grid(path, progress=False)
    assert again["cells_trained"] == 0 and again["table"] == table


def test_a_finished_cell_is_never_reused_for_another_recipe(tmp_path, monkeypatch):
    from soundseek.train.experiment import run_grid

    path = _grid(tmp_path, monkeypatch, GRID.replace("seeds: [0, 1, 2]", "seeds: [0]"))
    run_grid(path, progress=False, only=["ntxent"])
    with pytest.raises(ConfigError, match="another recipe"):
        run_grid(path, progress=False, only=["ntxent"], sets=["train.epochs=3"])
    out = run_grid(path, progress=False, only=["ntxent"], sets=["train.epochs=3"], grid_sets=[f"out={tmp_path / 'other'}"])
    assert out["cells_trained"] == 1 and (tmp_path / "other" / "ntxent" / "seed0" / "test_metrics.json").is_file()


@pytest.mark.parametrize("claim,msg", [
    ('{run: nope, baseline: ntxent}', "not in runs"),
    ('{run: mltm, baseline: ntxent, direction: better}', "direction"),
    ('{run: mltm, baseline: mltm, metric: t2a.R1}', "with itself"),
    ('{run: mltm, baseline: ntxent, colour: red}', "Unknown key"),
])
def test_bad_claims_are_refused_with_the_valid_names(tmp_path, claim, msg):
    from soundseek.train.experiment import load_grid

    path = tmp_path / "g.yaml"
    path.write_text(GRID.split("claims:")[0] + f"claims:\n  - {claim}\n")
    with pytest.raises(ConfigError, match=msg):
        load_grid(path)


def test_only_with_an_unknown_run_lists_the_runs(tmp_path, monkeypatch):
    from soundseek.train.experiment import run_grid

    path = _grid(tmp_path, monkeypatch)
    with pytest.raises(ConfigError, match="Valid: ntxent, mltm"):
        run_grid(path, progress=False, only=["nope"])


def test_shipped_claims_grids_parse_and_name_their_runs():
    from pathlib import Path

    from soundseek.train.experiment import cell_config, load_grid

    root = Path(__file__).resolve().parents[1] / "experiments"
    files = sorted(root.glob("seed-claims*.yaml"))
    assert files
    for f in files:
        grid = load_grid(f)
        assert grid.claims and grid.seeds == [0, 1, 2]
        for run in grid.runs:
            cell_config(grid, f.parent, run, 0)  # every recipe resolves
        grid2 = load_grid(f, [f"out={grid.out}-corpus"])
        cfg = cell_config(grid2, f.parent, next(iter(grid2.runs)), 0, ["data.path=data/debian-sfx/train/manifest.jsonl"])
        assert cfg.data.path == "data/debian-sfx/train/manifest.jsonl" and str(cfg.train.out_dir).startswith(grid.out + "-corpus")
