"""Match confidence: the logistic calibration against scikit-learn, bands and cuts, the files
(shipped default, beside checkpoints, in an index), hostile files, and hits that carry it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index import calibration as cal
from soundseek.index.calibration import Calibration


def _data(seed=0, q=40, n=60, d=16, noise=0.9):
    rng = np.random.default_rng(seed)
    audio = rng.standard_normal((n, d))
    audio /= np.linalg.norm(audio, axis=1, keepdims=True)
    rel = [set(rng.choice(n, 2, replace=False).tolist()) for _ in range(q)]
    text = np.stack([audio[list(r)].sum(0) + noise * rng.standard_normal(d) for r in rel])
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return text, audio, rel


def test_logistic_fit_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    text, audio, rel = _data()
    x, y, _ = cal._pairs(text, audio, rel, 10)
    w = cal._logistic(x, y, l2=1e-3)
    ref = sklearn.LogisticRegression(C=1.0 / 1e-3, tol=1e-10, max_iter=10000).fit(x, y)
    assert w[1:] == pytest.approx(ref.coef_[0], rel=1e-3, abs=1e-3)
    assert w[0] == pytest.approx(ref.intercept_[0], rel=1e-3, abs=1e-3)


def test_fit_bands_order_precision_and_cross_validation():
    text, audio, rel = _data(1, q=80, noise=0.4)
    c = cal.fit(text, audio, rel)
    res = cal.band_precision(c, text, audio, rel)
    assert sum(r["n"] for r in res.values()) == 80 * 10
    assert res["strong"]["precision"] > res["possible"]["precision"] > res["weak"]["precision"]
    cv = cal.cross_validated(text, audio, rel)
    assert sum(r["n"] for r in cv.values()) == 80 * 10
    assert c.probability(0.9, 5.0) > c.probability(0.1, 0.0)


def test_band_cuts_and_uncalibrated_margin_rule():
    c = Calibration(w=(0.0, 0.0, 1.0))  # P = sigmoid(margin)
    assert c.band(0.3, 0.1) == "strong"  # P = 0.52
    assert c.band(0.3, -1.0) == "possible"  # P = 0.27
    assert c.band(0.3, -2.0) == "weak"  # P = 0.12
    assert c.band(None, None) == "weak" and c.band(float("nan"), 1.0) == "weak"
    u = cal.UNCALIBRATED
    assert (u.band(0.1, 4.5), u.band(0.1, 3.0), u.band(0.9, 1.0)) == ("strong", "possible", "weak")
    assert u.probability(0.5, 3.0) is None
    with pytest.raises(ValueError):
        Calibration(w=(0.0, 1.0))
    with pytest.raises(ValueError):
        Calibration(w=(0.0, 1.0, 1.0), strong=0.1, possible=0.5)


def test_shipped_default_calibration_is_valid_and_held_out():
    c = cal.load_for(None)
    assert c.calibrated and c.info["split"] == "test" and "real-sfx-dev" in c.info["corpus"]
    assert c.info["precision"]["cross_validated"]["weak"]["precision"] < 0.2
    assert cal.path_for("default") == cal.DEFAULT_CALIBRATION
    assert cal.path_for("runs/x/best.pt").name == "best.calibration.json"


@pytest.mark.parametrize("text", ["{", "[]", '{"version": 1, "w": [1, 2]}', '{"version": 1, "w": ["a", 1, 2]}',
                                  '{"version": 99, "w": [1, 2, 3]}', '{"version": 1, "w": [1e999, 0, 0]}'])
def test_hostile_calibration_files_are_one_line_errors(tmp_path, text):
    p = tmp_path / "calibration.json"
    p.write_text(text)
    with pytest.raises(ValueError, match="bad calibration file"):
        Calibration.load(p)


def test_hits_carry_confidence_from_the_index_calibration(tmp_path):
    from index_helpers import make_audio_folder

    make_audio_folder(tmp_path / "lib", n=8, bad=False)
    build_index(tmp_path / "lib", HashEmbedder(), tmp_path / "idx", progress=False)
    Calibration(w=(-100.0, 0.0, 0.0)).save(tmp_path / "idx" / "calibration.json")  # nothing is relevant
    s = Searcher(tmp_path / "idx", HashEmbedder())
    hits = s.search_text("low tone", k=5, mode="semantic")
    assert {h["confidence"] for h in hits} == {"weak"} and cal.verdict(hits) == cal.NO_GOOD_MATCH
    assert all(h["why"]["probability"] < 1e-6 and h["why"]["calibrated"] for h in hits)
    Calibration(w=(100.0, 0.0, 0.0)).save(tmp_path / "idx" / "calibration.json")  # everything is
    hits = Searcher(tmp_path / "idx", HashEmbedder()).search_text("low tone", k=5)
    assert {h["confidence"] for h in hits} == {"strong"} and cal.verdict(hits) is None


def test_fit_corpus_with_an_embedder(tmp_path):
    from index_helpers import make_audio_folder

    freqs = make_audio_folder(tmp_path / "lib", n=12, bad=False)
    clips = [(tmp_path / "lib" / k, ["a low tone" if f < 1000 else "a high tone", f"tone {k}"]) for k, f in freqs.items()]
    c, report = cal.fit_corpus(HashEmbedder(), clips)
    assert c.calibrated and c.info["clips"] == 12 and set(report) == {"fitted", "cross_validated"}
    out = c.save(tmp_path / "x.calibration.json")
    assert Calibration.load(out).w == pytest.approx(c.w)
    assert "| strong |" in cal.format_report(report)
    with pytest.raises(ValueError, match="at least 10"):
        cal.fit_corpus(HashEmbedder(), clips[:3])
