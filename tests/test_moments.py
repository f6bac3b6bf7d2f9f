"""Moments in long recordings: windows at index time, grouping/merging at search time, and
the localisation of a known clip inside a long file through the HTTP API."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index.moments import WINDOW_ID_BASE, default_window, group_hits, window_spans

SR = 16000


def test_window_spans_cover_the_file():
    assert window_spans(SR * 10, SR, 10.0, 5.0) == []  # fits one window
    spans = window_spans(int(SR * 23.3), SR, 10.0, 5.0)
    assert spans[0] == (0, SR * 10) and spans[-1][1] == int(SR * 23.3)
    assert [a for a, _ in spans] == [0, SR * 5, SR * 10, int(SR * 23.3) - SR * 10]
    assert all(b - a == SR * 10 for a, b in spans)
    assert window_spans(SR * 30, SR, 0.0, 5.0) == []
    assert default_window(HashEmbedder(), None, None) == (10.0, 5.0)
    with pytest.raises(ValueError, match="hop"):
        default_window(HashEmbedder(), 4.0, 5.0)


def test_group_hits_merges_nearby_windows_of_one_file():
    B = WINDOW_ID_BASE
    wins = {B + 1: (7, 0.0, 2.0), B + 2: (7, 1.0, 3.0), B + 3: (7, 2.0, 4.0), B + 4: (7, 6.0, 8.0), B + 5: (9, 0.0, 2.0)}
    scores = np.array([0.90, 0.88, 0.87, 0.70, 0.60, 0.10])
    ids = np.array([B + 2, B + 3, B + 4, B + 1, 5, -1])
    g = group_hits(scores, ids, wins, k=10)
    assert [x["item"] for x in g] == [7, 5]
    # best [1,3] grows over [2,4] (0.88 >= 0.90 - 0.02); [6,8] is not adjacent; [0,2] scores too low
    assert (g[0]["start"], g[0]["end"], g[0]["score"]) == (1.0, 4.0, 0.90)
    assert g[1]["start"] is None and g[1]["score"] == 0.60
    assert group_hits(scores, ids, wins, k=1) == g[:1]


def _clips() -> list[np.ndarray]:
    """Five distinct 2 s sounds: two tones and three band-limited noises."""
    rng = np.random.default_rng(0)
    t = np.arange(2 * SR) / SR
    out = [0.5 * np.sin(2 * np.pi * f * t) for f in (220.0, 3000.0)]
    for lo, hi in ((500, 900), (5000, 7000), (1200, 1500)):
        spec = np.fft.rfft(rng.standard_normal(t.size))
        f = np.fft.rfftfreq(t.size, 1 / SR)
        spec[(f < lo) | (f > hi)] = 0
        x = np.fft.irfft(spec, t.size)
        out.append(0.5 * x / np.abs(x).max())
    return [(c + 0.01 * rng.standard_normal(c.size)).astype(np.float32) for c in out]


@pytest.fixture(scope="module")
def long_index(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("moments")
    root = tmp / "lib"
    root.mkdir()
    clips = _clips()
    sf.write(root / "long_take.wav", np.concatenate(clips), SR)  # 10 s: clip i at [2i, 2i+2]
    rng = np.random.default_rng(1)
    for i in range(6):  # short distractors
        t = np.arange(SR) / SR
        sf.write(root / f"short_{i}.wav", (0.3 * np.sin(2 * np.pi * (350 + 400 * i) * t)
                                           + 0.05 * rng.standard_normal(t.size)).astype(np.float32), SR)
    rep = build_index(root, HashEmbedder(), tmp / "idx", progress=False, window=2.0, hop=0.5)
    assert rep.total == 7
    return tmp, clips


def test_third_clip_is_found_at_its_time_span_through_the_api(long_index):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from soundseek.service.app import create_app

    tmp, clips = long_index
    c = TestClient(create_app(tmp / "idx", HashEmbedder()))
    health = c.get("/api/health").json()
    assert health["items"] == 7 and health["vectors"] == 7 + 17  # (10 - 2) / 0.5 + 1 windows
    buf = io.BytesIO()
    sf.write(buf, clips[2], SR, format="WAV")
    r = c.post("/api/search/audio", files={"file": ("third.wav", buf.getvalue(), "audio/wav")}, data={"k": "3"})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 3 and len({h["id"] for h in hits}) == 3  # k files, windows grouped
    top = hits[0]
    assert top["path"] == "long_take.wav" and top["score"] > 0.99
    assert top["start"] == pytest.approx(4.0, abs=0.25) and top["end"] == pytest.approx(6.0, abs=0.25)
    assert top["duration"] == pytest.approx(10.0)
    assert "audio_url" not in top and r.json()["peaks"][str(top["id"])]  # the page plays from top["start"]
    # every clip is found at its own place
    for i, clip in enumerate(clips):
        buf = io.BytesIO()
        sf.write(buf, clip, SR, format="WAV")
        h = c.post("/api/search/audio", files={"file": ("q.wav", buf.getvalue(), "audio/wav")}).json()["hits"][0]
        assert h["path"] == "long_take.wav"  # the moment holds the clip, at most a hop wider each side
        assert 2 * i - 0.5 <= h["start"] <= 2 * i + 0.25 and 2 * i + 1.75 <= h["end"] <= 2 * i + 2.5, (i, h)
    # short files keep the whole-file span; find-similar groups windows too
    sim = c.get(f"/api/clips/{top['id']}/similar", params={"k": 3}).json()["hits"]
    assert len(sim) == 3 and top["id"] not in [h["id"] for h in sim]
    assert all(h["start"] == 0.0 and h["end"] == h["duration"] for h in sim)


def test_windows_follow_file_changes(long_index, tmp_path):
    tmp, clips = long_index
    root = tmp_path / "lib"
    root.mkdir()
    sf.write(root / "long_take.wav", np.concatenate(clips), SR)
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False, window=2.0, hop=1.0)
    s = Searcher(tmp_path / "idx", HashEmbedder())
    assert len(s) == 1 + 9
    sf.write(root / "long_take.wav", np.concatenate(clips[:3]), SR)  # shortened: 6 s
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False, window=2.0, hop=1.0)
    s = Searcher(tmp_path / "idx", HashEmbedder())
    assert len(s) == 1 + 5
    hit = s.search_audio(clips[1], k=1)[0]
    assert (hit["start"], hit["end"]) == pytest.approx((2.0, 4.0))
    (root / "long_take.wav").unlink()
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False, window=2.0, hop=1.0)
    assert len(Searcher(tmp_path / "idx", HashEmbedder())) == 0


def test_pair_wise_scorer_refines_a_text_moment(tmp_path):
    """HashEmbedder.rerank is a pair-wise scorer (max over frames): the moment of a short
    high burst inside a 4 s window shrinks to the quarter window holding it."""
    rng = np.random.default_rng(3)
    t = np.arange(6 * SR) / SR
    x = (0.3 * np.sin(2 * np.pi * 180 * t) + 1e-3 * rng.standard_normal(t.size)).astype(np.float32)
    burst = slice(int(1.1 * SR), int(1.5 * SR))  # a chord of high partials: the fake's "high" bands
    x[burst] = sum(0.2 * np.sin(2 * np.pi * f * t[burst]) for f in (1500, 2500, 3700, 5100, 6900)).astype(np.float32)
    root = tmp_path / "lib"
    root.mkdir()
    sf.write(root / "take.wav", x, SR)
    sf.write(root / "other.wav", (0.3 * np.sin(2 * np.pi * 300 * t[:SR])).astype(np.float32), SR)
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False, window=4.0, hop=2.0)
    s = Searcher(tmp_path / "idx", HashEmbedder())
    hit = s.search_text("high", k=1, mode="semantic")[0]
    assert hit["path"] == "take.wav"
    assert hit["end"] - hit["start"] == pytest.approx(1.0, abs=0.05)  # a quarter of the 4 s window
    assert hit["start"] <= 1.15 and hit["end"] >= 1.45  # holds the burst
    assert "_window" not in hit
    # without frames (index --no-frames) the window itself is the moment
    build_index(root, HashEmbedder(), tmp_path / "idx2", progress=False, window=4.0, hop=2.0, keep_frames=False)
    hit = Searcher(tmp_path / "idx2", HashEmbedder()).search_text("high", k=1, mode="semantic")[0]
    assert (hit["start"], hit["end"]) == (0.0, 4.0)


def _window_lengths(index_dir) -> dict[str, set[float]]:
    import sqlite3

    con = sqlite3.connect(index_dir / "index.sqlite")
    rows = con.execute("SELECT items.key, windows.end - windows.start FROM windows JOIN items "
                       "ON items.id = windows.item_id").fetchall()
    con.close()
    out: dict[str, set[float]] = {}
    for key, length in rows:
        out.setdefault(key, set()).add(round(length, 3))
    return out


def test_an_update_keeps_the_index_window_and_a_new_window_reembeds_every_file(long_index, tmp_path, monkeypatch):
    from soundseek.index import indexer

    tmp, clips = long_index
    root, idx = tmp_path / "lib", tmp_path / "idx"
    root.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(root / name, np.concatenate(clips), SR)
    build_index(root, HashEmbedder(), idx, progress=False, window=2.0, hop=1.0)
    sf.write(root / "c.wav", np.concatenate(clips[:3]), SR)
    rep = build_index(root, HashEmbedder(), idx, progress=False)  # no window given: the index's own
    assert (rep.added, rep.unchanged) == (1, 2)
    assert _window_lengths(idx) == {"a.wav": {2.0}, "b.wav": {2.0}, "c.wav": {2.0}}
    # a new window: every file is re-embedded, even those whose content did not change; a crash
    # half way leaves the rest marked, and the next run (window not given) finishes them
    real, calls = indexer._commit, []

    def crash_after_one(*a, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(indexer, "_commit", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        build_index(root, HashEmbedder(), idx, progress=False, window=4.0, hop=2.0, batch_size=1, workers=1)
    monkeypatch.setattr(indexer, "_commit", real)
    lengths = _window_lengths(idx)
    assert sorted(map(sorted, lengths.values())) == [[2.0], [2.0], [4.0]]  # one file done before the crash
    rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert (rep.updated, rep.unchanged) == (2, 1)
    assert _window_lengths(idx) == {"a.wav": {4.0}, "b.wav": {4.0}, "c.wav": {4.0}}
    s = Searcher(idx, HashEmbedder())
    assert len(s) == 3 + 2 * 4 + 2  # 10 s files: windows at 0, 2, 4, 6; the 6 s file: 0, 2
    hit = s.search_audio(np.concatenate(clips[2:4]), k=1)[0]
    assert (hit["start"], hit["end"]) == pytest.approx((4.0, 8.0))
    rep = build_index(root, HashEmbedder(), idx, progress=False, window=4.0)  # same window: nothing to do
    assert rep.unchanged == 3 and rep.updated == 0


def test_an_update_keeps_the_index_decode_limit(tmp_path):
    rng = np.random.default_rng(3)
    root, idx = tmp_path / "lib", tmp_path / "idx"
    root.mkdir()
    waves = {n: (0.3 * rng.standard_normal(6 * SR)).astype(np.float32) for n in ("a.wav", "b.wav")}
    sf.write(root / "a.wav", waves["a.wav"], SR)
    build_index(root, HashEmbedder(), idx, progress=False, max_seconds=2.0, window=0)
    sf.write(root / "b.wav", waves["b.wav"], SR)
    rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert rep.added == 1
    s = Searcher(idx, HashEmbedder())
    for name, wave in waves.items():  # both files were embedded from their first 2 s only
        hit = s.search_audio(wave[: 2 * SR], k=1)[0]
        assert hit["path"] == name and hit["score"] > 0.999, (name, hit)
        assert s.search_audio(wave, k=1)[0]["score"] < 0.99
