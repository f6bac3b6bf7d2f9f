"""How good is a match: a hit's semantic score turned into a probability of being relevant
and a band, ``strong`` | ``possible`` | ``weak``.

A raw cosine means little on its own (one model's 0.35 is a correct door, another query's 0.35
is the closest thing to a dog in a library without one). Two features are used:

- ``score``: the hit's semantic score ``q . x`` (cosine of L2-normalised vectors);
- ``margin``: how far the hit stands out of the query's score distribution *on this library*,
  ``(score - mean) / std`` of ``q . x`` over the library's items (a fixed sample of at most
  :data:`LIBRARY_SAMPLE` of them): a query with no good answer scores everything alike.

A logistic regression ``P(relevant) = sigmoid(w0 + w1 score + w2 margin)`` is fitted (Newton's
method, numpy only) on the top :data:`FIT_TOP` hits of held-out captioned clips the model never
trained on: every distinct caption is a query, the library is the held-out clips, a hit is
relevant when its clip carries that caption. Bands: ``strong`` when P >= ``strong`` (0.5),
``possible`` when P >= ``possible`` (0.2), else ``weak``.

Where a calibration lives (:func:`path_for`): beside a checkpoint (``best.pt`` ->
``best.calibration.json``; the shipped model's is ``assets/default.calibration.json``), inside
a pretrained model's directory (``hf-clap:DIR`` -> ``DIR/soundseek.calibration.json``), or in
an index directory (``calibration.json``, which wins). ``soundseek eval CKPT --calibrate``
writes one for any checkpoint, ``soundseek eval --model hf-clap:DIR --data CORPUS --calibrate``
for a pretrained model from any captioned corpus. Without a file the bands fall back to the
margin alone (:data:`UNCALIBRATED`: strong at 4 standard deviations, possible at 2.5), and hits
say ``"calibrated": false`` under ``why``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["BANDS", "NO_GOOD_MATCH", "Calibration", "UNCALIBRATED", "verdict", "path_for", "load_for",
           "fit", "fit_corpus", "format_report", "band_precision", "cross_validated", "margins", "LIBRARY_SAMPLE", "FIT_TOP"]

BANDS = ("strong", "possible", "weak")
NO_GOOD_MATCH = "no good match; closest sounds below"
LIBRARY_SAMPLE = 1000  # library items a query's score distribution is measured on
FIT_TOP = 10  # hits per query used to fit (the hits a user sees)
FILE_NAME = "calibration.json"
VERSION = 1
# the shipped model's (models.factory.DEFAULT_CHECKPOINT with this suffix; not imported: no torch here)
DEFAULT_CALIBRATION = Path(__file__).resolve().parents[1] / "assets" / "default.calibration.json"


@dataclass
class Calibration:
    """``P(relevant | score, margin) = sigmoid(w[0] + w[1] score + w[2] margin)`` and band cuts.

    ``w`` None: uncalibrated; bands from the margin alone (``margin_strong`` / ``margin_possible``).
    """

    w: tuple[float, float, float] | None = None
    strong: float = 0.5
    possible: float = 0.2
    margin_strong: float = 4.0
    margin_possible: float = 2.5
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.w is not None:
            w = tuple(float(x) for x in self.w)
            if len(w) != 3 or not all(math.isfinite(x) for x in w):
                raise ValueError(f"calibration weights must be 3 finite numbers, got {self.w!r}")
            self.w = w  # type: ignore[assignment]
        if not 0.0 < self.possible <= self.strong < 1.0:
            raise ValueError(f"calibration cuts need 0 < possible <= strong < 1, got {self.possible}, {self.strong}")

    @property
    def calibrated(self) -> bool:
        return self.w is not None

    def probability(self, score: float, margin: float) -> float | None:
        """P(relevant) of a hit (None when uncalibrated)."""
        if self.w is None:
            return None
        z = self.w[0] + self.w[1] * float(score) + self.w[2] * float(margin)
        return float(1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z)))))

    def band(self, score: float | None, margin: float | None) -> str:
        """``strong`` | ``possible`` | ``weak`` (``weak`` when there is no semantic score)."""
        if score is None or margin is None or not math.isfinite(score) or not math.isfinite(margin):
            return "weak"
        p = self.probability(score, margin)
        if p is None:
            return "strong" if margin >= self.margin_strong else "possible" if margin >= self.margin_possible else "weak"
        return "strong" if p >= self.strong else "possible" if p >= self.possible else "weak"

    # --- files ----------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"version": VERSION, "w": list(self.w) if self.w else None, "strong": self.strong,
                           "possible": self.possible, "info": self.info}, indent=1)

    @classmethod
    def from_json(cls, text: str, source: str = "calibration") -> "Calibration":
        try:
            d = json.loads(text)
            if not isinstance(d, dict) or d.get("version") != VERSION:
                raise ValueError(f"not a version-{VERSION} calibration")
            return cls(w=d["w"], strong=float(d.get("strong", 0.5)), possible=float(d.get("possible", 0.2)),
                       info=dict(d.get("info") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{source}: bad calibration file ({e}); rebuild it with `soundseek eval --calibrate`") from None

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        p = Path(path)
        if p.stat().st_size > 1 << 20:
            raise ValueError(f"{p}: a calibration file is a few hundred bytes; this one is too large")
        return cls.from_json(p.read_text(encoding="utf-8"), str(p))

    def save(self, path: str | Path) -> Path:
        from ..fileio import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")
        return Path(path)


UNCALIBRATED = Calibration()


def verdict(hits: Sequence[dict]) -> str | None:
    """``"no good match; closest sounds below"`` when no hit is better than ``weak`` (also for
    hits without a ``confidence``); None when some hit is ``strong`` or ``possible`` or there are none."""
    if not hits:
        return None
    if any(h.get("confidence") in ("strong", "possible") for h in hits):
        return None
    return NO_GOOD_MATCH


# --- where calibrations live -----------------------------------------------------------------
def path_for(model: str | Path | None) -> Path:
    """The calibration file of a model spec: ``None``/``"default"`` -> the shipped model's,
    ``family:DIR`` -> ``DIR/soundseek.calibration.json``, a checkpoint ``X.pt`` -> ``X.calibration.json``."""
    if model is None or str(model) in ("", "default"):
        return DEFAULT_CALIBRATION
    from ..models.spec import parse_model_spec

    spec = parse_model_spec(model)
    if spec:
        return Path(spec.path) / ("soundseek." + FILE_NAME)
    return Path(model).with_suffix(".calibration.json")


def load_for(model: str | Path | None, index_dir: str | Path | None = None) -> Calibration:
    """The calibration to use: the index's own ``calibration.json``, else the model's (see
    :func:`path_for`), else :data:`UNCALIBRATED`."""
    cands = [Path(index_dir) / FILE_NAME] if index_dir is not None else []
    try:
        cands.append(path_for(model))
    except (ValueError, TypeError, KeyError, ImportError):
        pass
    for p in cands:
        if p.is_file():
            return Calibration.load(p)
    return UNCALIBRATED


# --- fitting ---------------------------------------------------------------------------------
def margins(scores: np.ndarray, library: np.ndarray) -> np.ndarray:
    """(q, n) hit scores, (q, m) each query's scores on the library -> (q, n) margins
    ``(score - mean) / std`` (std floored at 1e-6)."""
    lib = np.asarray(library, np.float64)
    mu, sd = lib.mean(axis=1, keepdims=True), np.maximum(lib.std(axis=1, keepdims=True), 1e-6)
    return (np.asarray(scores, np.float64) - mu) / sd


def _pairs(text_emb: np.ndarray, audio_emb: np.ndarray, relevant: Sequence[set[int]], top: int):
    """Features (score, margin) and labels of every query's top hits."""
    s = np.asarray(text_emb, np.float64) @ np.asarray(audio_emb, np.float64).T
    m = margins(s, s)
    order = np.argsort(-s, axis=1, kind="stable")[:, :top]
    feats, labels, qid = [], [], []
    for qi, row in enumerate(order):
        for j in row:
            feats.append((s[qi, j], m[qi, j]))
            labels.append(float(int(j) in relevant[qi]))
            qid.append(qi)
    return np.asarray(feats, np.float64).reshape(-1, 2), np.asarray(labels), np.asarray(qid)


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, iters: int = 50) -> np.ndarray:
    """Weights [w0, w1, w2] maximising the L2-penalised log-likelihood (Newton / IRLS)."""
    X = np.concatenate([np.ones((len(x), 1)), x], axis=1)
    w = np.zeros(X.shape[1])
    reg = l2 * np.eye(X.shape[1])
    reg[0, 0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(X @ w, -60, 60)))
        g = X.T @ (p - y) + reg @ w
        H = (X * (p * (1 - p))[:, None]).T @ X + reg + 1e-9 * np.eye(X.shape[1])
        step = np.linalg.solve(H, g)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def fit(text_emb: np.ndarray, audio_emb: np.ndarray, relevant: Sequence[set[int]], top: int = FIT_TOP,
        info: dict | None = None) -> Calibration:
    """Fit on held-out data: ``text_emb`` (q, d) query captions, ``audio_emb`` (n, d) the held-out
    clips (the library), ``relevant[i]`` the clip indices relevant to query ``i``."""
    x, y, _ = _pairs(text_emb, audio_emb, relevant, top)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs queries with both relevant and irrelevant hits among their top hits")
    w = _logistic(x, y)
    return Calibration(w=tuple(w.tolist()), info={"queries": len(relevant), "clips": int(len(audio_emb)),
                                                  "pairs": int(len(y)), "relevant_pairs": int(y.sum()),
                                                  "top": top, **(info or {})})


def band_precision(cal: Calibration, text_emb: np.ndarray, audio_emb: np.ndarray,
                   relevant: Sequence[set[int]], top: int = FIT_TOP) -> dict[str, dict[str, float]]:
    """Per band: hits (``n``) among every query's top ``top`` and the fraction relevant (``precision``)."""
    x, y, _ = _pairs(text_emb, audio_emb, relevant, top)
    bands = np.asarray([cal.band(s, m) for s, m in x])
    return {b: {"n": int((bands == b).sum()), "precision": float(y[bands == b].mean()) if (bands == b).any() else float("nan")}
            for b in BANDS}


def cross_validated(text_emb: np.ndarray, audio_emb: np.ndarray, relevant: Sequence[set[int]],
                    top: int = FIT_TOP, folds: int = 2, seed: int = 0) -> dict[str, dict[str, float]]:
    """Band precision measured on queries the calibration was not fitted on: queries split into
    ``folds`` groups, each scored by a calibration fitted on the others, counts pooled."""
    q = len(relevant)
    perm = np.random.default_rng(seed).permutation(q)
    tot = {b: [0, 0.0] for b in BANDS}
    for f in range(folds):
        test = perm[f::folds]
        train = np.setdiff1d(perm, test)
        cal = fit(text_emb[train], audio_emb, [relevant[i] for i in train], top)
        res = band_precision(cal, text_emb[test], audio_emb, [relevant[i] for i in test], top)
        for b, r in res.items():
            if r["n"]:
                tot[b][0] += r["n"]
                tot[b][1] += r["n"] * r["precision"]
    return {b: {"n": n, "precision": (s / n if n else float("nan"))} for b, (n, s) in tot.items()}


def fit_corpus(embedder: Any, clips: Sequence[tuple[str | Path, Sequence[str]]], batch_size: int = 16,
               top: int = FIT_TOP, info: dict | None = None, progress: bool = False) -> tuple[Calibration, dict]:
    """Embed held-out captioned clips ``(audio path, captions)`` with ``embedder`` (the search
    path: ``embed_audio`` / ``embed_text``) and fit. Queries: the distinct captions (case and
    spaces folded); relevant: the clips carrying that caption. Returns the calibration and a
    report: band precision on the fitting data and cross-validated over queries (2 folds)."""
    clips = [(Path(a), [str(c) for c in caps]) for a, caps in clips]
    if len(clips) < 10:
        raise ValueError(f"calibration needs at least 10 captioned clips, got {len(clips)}")
    by_caption: dict[str, set[int]] = {}
    for j, (_, caps) in enumerate(clips):
        for c in caps:
            c = " ".join(c.lower().split())
            if c:
                by_caption.setdefault(c, set()).add(j)
    queries = sorted(by_caption)
    embs = []
    steps = range(0, len(clips), batch_size)
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="calibration: embedding clips", unit="batch")
    from .indexer import load_wave

    sr, max_seconds = int(embedder.sample_rate), getattr(embedder, "max_seconds", None)
    for s in steps:
        waves = [load_wave(a, sr, max_seconds)[0] for a, _ in clips[s:s + batch_size]]
        e, _ = embedder.embed_audio(waves)
        embs.append(np.asarray(e, np.float32).reshape(-1, int(embedder.dim)))
    audio = np.concatenate(embs)
    text = np.asarray(embedder.embed_text(queries), np.float32)
    relevant = [by_caption[q] for q in queries]
    cal = fit(text, audio, relevant, top, info)
    report = {"fitted": band_precision(cal, text, audio, relevant, top),
              "cross_validated": cross_validated(text, audio, relevant, top)}
    cal.info["precision"] = report
    return cal, report


def format_report(report: dict) -> str:
    """The band-precision table of :func:`fit_corpus` as Markdown."""
    lines = ["| band | hits (cross-validated) | precision (cross-validated) | hits (fitted) | precision (fitted) |",
             "|---|---|---|---|---|"]
    for b in BANDS:
        cv, ft = report["cross_validated"][b], report["fitted"][b]
        pct = lambda r: "-" if not r["n"] else f"{100 * r['precision']:.1f} %"  # noqa: E731
        lines.append(f"| {b} | {cv['n']} | {pct(cv)} | {ft['n']} | {pct(ft)} |")
    return "\n".join(lines)
