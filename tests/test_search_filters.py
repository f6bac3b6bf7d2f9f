"""Filters, pagination, counts and the hit contract of the Searcher: filtered searches against
an obvious reference (score every stored vector, keep the files that pass, sort), both on the
exact path (small filtered sets) and on the over-fetching vector search."""
from __future__ import annotations

import re
import numpy as np
import pytest
import soundfile as sf

from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index import search as search_mod
from soundseek.index.calibration import NO_GOOD_MATCH, verdict
from soundseek.index.filters import FILTER_KEYS, check_where
from soundseek.index.search import MAX_QUERY_CHARS, validate_query

HIT_KEYS = {"id", "path", "abs_path", "name", "folder", "score", "confidence", "duration", "sample_rate",
            "channels", "format", "tags", "start", "end", "why"}


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("filters") / "lib"
    rng = np.random.default_rng(0)
    specs = []
    for i in range(24):
        folder = ["doors", "doors/wood", "rain", ""][i % 4]
        ext = ["wav", "flac", "ogg"][i % 3]
        sr = [16000, 22050, 44100][(i // 3) % 3]
        ch = 1 + (i % 2)
        dur = 0.2 + 0.1 * i
        d = root / folder if folder else root
        d.mkdir(parents=True, exist_ok=True)
        wave = (0.2 * rng.standard_normal((int(sr * dur), ch))).astype(np.float32)
        sf.write(d / f"s{i:02d}.{ext}", wave if ch > 1 else wave[:, 0], sr, format=ext.upper())
        specs.append((f"{folder}/s{i:02d}.{ext}".lstrip("/"), sr, ch, dur, ext, folder))
    idx = root.parent / "idx"
    build_index(root, HashEmbedder(), idx, progress=False, window=0)
    return Searcher(idx, HashEmbedder()), root, specs


def _reference(s: Searcher, q: np.ndarray, where: dict, k: int, exclude: int | None = None) -> list[int]:
    """Every file scored exactly, the failing ones dropped, best first."""
    w = check_where(where)
    rows = s.store.con.execute("SELECT id, key, duration, sample_rate, channels, embedding FROM items").fetchall()
    keep = []
    for i, key, dur, sr, ch, emb in rows:
        ok = (w.get("min_duration", -1) <= dur <= w.get("max_duration", 1e9)
              and w.get("sample_rate", sr) == sr and w.get("channels", ch) == ch
              and ("format" not in w or key.endswith("." + w["format"]))
              and ("folder" not in w or key.startswith(w["folder"] + "/")))
        if ok and i != exclude:
            keep.append((-float(np.frombuffer(emb, np.float32) @ q), i))
    return [i for _, i in sorted(keep)[:k]]


WHERES = [{"format": "flac"}, {"folder": "doors"}, {"folder": "doors/wood", "channels": 2},
          {"min_duration": 0.5, "max_duration": 1.5}, {"sample_rate": 44100, "format": ".WAV"}, {}]


@pytest.mark.parametrize("exact_max", [search_mod.EXACT_FILTER_MAX, 0])  # exact path / over-fetching path
@pytest.mark.parametrize("where", WHERES)
def test_filtered_search_is_the_best_k_among_passing_files(lib, where, exact_max, monkeypatch):
    s, root, specs = lib
    monkeypatch.setattr(search_mod, "EXACT_FILTER_MAX", exact_max)
    target = s.store.con.execute("SELECT id, embedding FROM items ORDER BY id LIMIT 1").fetchone()
    q = np.frombuffer(target[1], np.float32)
    hits = s.similar(int(target[0]), k=4, where=where)
    assert [h["id"] for h in hits] == _reference(s, q, where, 4, exclude=int(target[0]))
    assert s.count(where) == len(_reference(s, q, where, 1000))
    text = s.search_text("door creak", k=5, where=where, mode="semantic")
    assert [h["id"] for h in text] == _reference(s, HashEmbedder().embed_text(["door creak"])[0], where, 5)
    for h in text:  # every hit passes
        assert h["format"] == where.get("format", h["format"]).lower().lstrip(".")
        assert h["channels"] == where.get("channels", h["channels"])


def test_filter_in_hybrid_and_text_modes_and_count(lib):
    s, _, specs = lib
    for mode in ("text", "hybrid"):
        hits = s.search_text("doors rain wood", k=10, mode=mode, where={"format": "wav"})
        assert hits and all(h["format"] == "wav" for h in hits)
    assert s.count() == len(specs) == s.count({})
    assert s.count({"folder": "doors"}) == sum(1 for sp in specs if sp[5].startswith("doors"))
    assert s.count({"folder": "door"}) == 0  # a folder prefix is whole folder names
    assert s.count({"channels": 2, "format": "ogg"}) == sum(1 for sp in specs if sp[2] == 2 and sp[4] == "ogg")


def test_pagination_is_a_slice_of_the_ranking(lib):
    s, _, _ = lib
    full = s.search_text("rain", k=12, mode="semantic")
    assert [h["id"] for h in s.search_text("rain", k=4, offset=4, mode="semantic")] == [h["id"] for h in full[4:8]]
    assert [h["id"] for h in s.search_text("rain", k=5, offset=8, mode="hybrid")] == \
        [h["id"] for h in s.search_text("rain", k=13, mode="hybrid")][8:13]
    with pytest.raises(ValueError, match="offset"):
        s.search_text("rain", k=10, offset=-1)
    with pytest.raises(ValueError, match="offset"):
        s.search_text("rain", k=10, offset=995)


@pytest.mark.parametrize("where, msg", [({"min_duraton": 1}, "Valid filters: min_duration, max_duration"),
                                        ({"channels": "2"}, "positive integer"),
                                        ({"min_duration": float("nan")}, "finite"),
                                        ({"folder": "../etc"}, "relative folder"),
                                        ({"min_duration": 3, "max_duration": 1}, "above"),
                                        ({"format": "wav; DROP TABLE"}, "extension")])
def test_bad_filters_are_errors_naming_the_valid_keys(lib, where, msg):
    s, _, _ = lib
    with pytest.raises(ValueError, match=msg):
        s.search_text("rain", where=where)
    with pytest.raises(ValueError, match=msg):
        s.count(where)


def test_filter_keys_table_is_typed():
    assert [k for k, _, _ in FILTER_KEYS] == ["min_duration", "max_duration", "sample_rate", "channels", "format",
                                             "folder", "tag"]
    assert all(t in (int, float, str) and d for _, t, d in FILTER_KEYS)


def test_every_hit_has_the_contract_keys(lib):
    s, root, specs = lib
    by_key = {sp[0]: sp for sp in specs}
    for hits in (s.search_text("rain", k=3), s.search_text("rain", k=3, mode="semantic"),
                 s.search_text("wood", k=3, mode="text"), s.similar(1, k=3),
                 s.search_audio(root / "doors" / "wood" / "s01.flac", k=3)):
        for h in hits:
            assert HIT_KEYS <= set(h), HIT_KEYS - set(h)
            key, sr, ch, dur, ext, folder = by_key[h["path"]]
            assert (h["sample_rate"], h["channels"], h["format"], h["folder"]) == (sr, ch, ext, folder)
            assert h["abs_path"] == str(root / key) and h["name"] == key.rsplit("/", 1)[-1]
            assert h["duration"] == pytest.approx(dur, abs=0.01)
            assert h["confidence"] in ("strong", "possible", "weak")


def test_hybrid_score_is_the_semantic_score_not_the_fusion(lib):
    """Hybrid hits showed the rank-fusion number (+0.0164) as their score."""
    s, _, _ = lib
    for h in s.search_text("s05 rain", k=5, mode="hybrid"):
        assert h["score"] == h["why"]["semantic"] and h["why"]["fused"] is not None
        assert abs(h["score"]) > 0.05 or h["why"]["fused"] < 0.02


def test_meaningless_and_overlong_queries_are_refused_locally_as_on_the_server(lib):
    """`search IDX "???"` returned 10 hits; a 10,000-character query ran locally but was a 400 on the server."""
    s, _, _ = lib
    with pytest.raises(ValueError, match="no words"):
        s.search_text("???")
    with pytest.raises(ValueError, match="too long"):
        s.search_text("rain " * 2000)
    assert validate_query("  rain\x00 on\u200b roof ") == "rain on roof"
    assert len(validate_query("x" * MAX_QUERY_CHARS)) == MAX_QUERY_CHARS
    with pytest.raises(ValueError, match="empty"):
        validate_query("   ")


def test_verdict_words_a_list_without_good_matches():
    assert verdict([{"confidence": "weak"}, {"confidence": "weak"}]) == NO_GOOD_MATCH
    assert verdict([{"confidence": "weak"}, {"confidence": "possible"}]) is None
    assert verdict([]) is None


def test_text_only_searcher_needs_no_model(lib):
    s, _, _ = lib
    t = Searcher.open(s.index_dir, text_only=True)
    hits = t.search_text("wood", k=3, mode="text")
    assert hits and all(h["folder"] == "doors/wood" and h["score"] is None for h in hits)
    assert {h["confidence"] for h in hits} == {"possible"}  # every word matched, no model to say more
    assert {h["confidence"] for h in t.search_text("wood xylophone", k=3, mode="text")} == {"weak"}
    with pytest.raises(ValueError, match="needs the model"):
        t.search_text("wood", k=3, mode="semantic")


def test_missing_index_and_file_as_index_are_one_line_errors_with_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"run `soundseek index FOLDER --index .*` first"):
        Searcher.open(tmp_path / "nothing", text_only=True)
    f = tmp_path / "file.wav"
    f.write_bytes(b"RIFF")
    with pytest.raises(FileNotFoundError, match="is a file, not an index directory"):
        Searcher.open(f, text_only=True)


def test_open_probes_the_server_then_loads_the_model_through_the_loader(lib, monkeypatch):
    """Searcher.open is the CLI's and serve's entry: a given server URI is probed before any
    model loads, and the model reference (given, else the index's) goes to ``loader``."""
    from soundseek.index.backends import milvus_backend

    s, _, _ = lib
    asked = []

    def loader(ref):
        asked.append(ref)
        return s.embedder

    t = Searcher.open(s.index_dir, loader=loader)
    assert asked == [s.manifest.get("model")] and t.embedder is s.embedder
    assert t.search_text("wood", k=3) == s.search_text("wood", k=3)
    Searcher.open(s.index_dir, model="other.ckpt", loader=loader)
    assert asked[-1] == "other.ckpt"

    probed = []

    def down(uri, token=None):
        probed.append(uri)
        raise milvus_backend.MilvusUnavailableError(f"no Milvus at {uri}")

    monkeypatch.setattr(milvus_backend, "probe", down)
    with pytest.raises(ConnectionError, match="no Milvus at http://127.0.0.1:9"):
        Searcher.open(s.index_dir, uri="http://127.0.0.1:9", loader=loader)
    assert probed == ["http://127.0.0.1:9"] and len(asked) == 2  # no model was loaded


@pytest.mark.parametrize("where", WHERES)
def test_store_answers_filters_as_the_plain_reference(lib, where):
    """Store.count / matching / passes (the SQL behind Searcher.count and the service's totals)
    agree with the Python reference filter."""
    s, _, _ = lib
    w = check_where(where)
    expect = set(_reference(s, np.zeros(s.manifest["dim"], np.float32), where, 1000))
    assert s.store.count(w) == len(expect)
    if w:
        assert s.store.matching(w) == expect
    ids = [int(i) for i in s.store.ids()]
    assert {i for i in ids if s.store.passes(i, w)} == expect
    assert not s.store.passes(max(ids) + 1, w)  # no such file


def test_the_service_runs_no_sql():
    """SQL lives in the index (Store and the modules under it), never in the service."""
    import ast
    from pathlib import Path

    import soundseek.service

    for path in Path(soundseek.service.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute):
                assert node.attr not in ("execute", "executemany", "executescript"), f"{path}:{node.lineno}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"\b(SELECT|INSERT|UPDATE|DELETE)\b.*\b(FROM|INTO|SET)\b", node.value), \
                    f"{path}:{node.lineno}: {node.value[:60]!r}"
