"""KDE and violin plots comparing per-caption lexical measures of caption sets (thesis fig. 4.5).

matplotlib (Agg backend, set on the figure's canvas -- no process-wide switch) and
``scipy.stats.gaussian_kde`` are imported lazily; matplotlib is in the ``train`` extra.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from soundseek.analysis.lexical import caption_measures, lexical_report, read_captions

__all__ = ["MEASURES", "analyze_caption_files", "compare_plots"]

MEASURES: dict[str, str] = {
    "mtld": "MTLD per caption",
    "length": "caption length (tokens)",
    "ttr": "type-token ratio per caption",
}


def _kde(ax, values: np.ndarray, label: str) -> None:
    from scipy.stats import gaussian_kde

    if values.size >= 2 and np.ptp(values) > 0:
        grid = np.linspace(values.min(), values.max(), 256)
        pad = 0.1 * (grid[-1] - grid[0])
        grid = np.linspace(grid[0] - pad, grid[-1] + pad, 256)
        density = gaussian_kde(values)(grid)
        (line,) = ax.plot(grid, density, label=label)
        ax.fill_between(grid, density, alpha=0.2, color=line.get_color())
    else:  # a KDE needs spread; show a spike instead
        ax.axvline(float(values.mean()) if values.size else 0.0, label=f"{label} (constant)")


def compare_plots(
    captions_a: Sequence[str],
    captions_b: Sequence[str] | None,
    out_png: str | Path,
    labels: Sequence[str] = ("A", "B"),
    measures: Sequence[str] = ("mtld", "length", "ttr"),
    threshold: float = 0.72,
) -> Path:
    """One row per measure: a KDE (left) and a violin plot (right) of the per-caption values.

    Args:
        captions_a, captions_b: caption sets (``captions_b=None`` plots one set).
        out_png: output image path (parent folders are created).
        labels: names of the sets in the legend.
        measures: subset of ``MEASURES`` (mtld, length, ttr).
    """
    bad = [m for m in measures if m not in MEASURES]
    if bad:
        raise ValueError(f"Invalid measure(s) {bad}. Valid: {', '.join(MEASURES)}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sets = [captions_a] if captions_b is None else [captions_a, captions_b]
    names = list(labels)[: len(sets)]
    if len(names) != len(sets):
        raise ValueError(f"need {len(sets)} labels, got {list(labels)}")
    per = [caption_measures(s, threshold) for s in sets]
    for name, p in zip(names, per):
        if p["length"].size == 0:
            raise ValueError(f"caption set {name!r} has no non-empty caption")
    fig = Figure(figsize=(10, 3.2 * len(measures)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(measures), 2, squeeze=False)
    for row, m in enumerate(measures):
        kde_ax, vio_ax = axes[row]
        for name, p in zip(names, per):
            _kde(kde_ax, p[m], name)
        kde_ax.set_xlabel(MEASURES[m])
        kde_ax.set_ylabel("density")
        kde_ax.legend()
        parts = vio_ax.violinplot([p[m] for p in per], showmedians=True)
        for i, body in enumerate(parts["bodies"]):
            body.set_facecolor(f"C{i}")
        vio_ax.set_xticks(range(1, len(names) + 1), names)
        vio_ax.set_ylabel(MEASURES[m])
    fig.suptitle("Lexical richness: " + " vs ".join(names))
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def analyze_caption_files(
    path_a: str | Path,
    path_b: str | Path | None = None,
    out_dir: str | Path = "lexical",
    labels: Sequence[str] | None = None,
    threshold: float = 0.72,
) -> dict:
    """Lexical report of one or two caption files, plus the comparison plot.

    Reads each file with :func:`soundseek.analysis.lexical.read_captions` (.txt, .csv,
    .jsonl, .json); writes ``out_dir/lexical_report.json`` and ``out_dir/lexical.png``.

    Returns:
        ``{"sets": {label: lexical_report}, "plot": str, "report": str}``.
    """
    paths = [Path(path_a)] + ([Path(path_b)] if path_b is not None else [])
    names = list(labels) if labels is not None else [p.stem for p in paths]
    if len(names) != len(paths):
        raise ValueError(f"need {len(paths)} labels, got {names}")
    if len(set(names)) != len(names):
        names = [f"{n} ({i + 1})" for i, n in enumerate(names)]
    caps = [read_captions(p) for p in paths]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sets = {n: lexical_report(c, threshold) for n, c in zip(names, caps)}
    plot = compare_plots(caps[0], caps[1] if len(caps) > 1 else None, out_dir / "lexical.png", names, threshold=threshold)
    report = out_dir / "lexical_report.json"
    report.write_text(json.dumps({"sets": sets, "files": [str(p) for p in paths]}, indent=2))
    return {"sets": sets, "plot": str(plot), "report": str(report)}
