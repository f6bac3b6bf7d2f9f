"""Word matching with the sound-effects vocabulary: generic modifiers do not make a match,
run-together and CamelCase names are split, abbreviations and synonyms match both ways, and an
index written before the vocabulary is migrated on open. Each case quoted from a real search
that went wrong gets its own assertion."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index import textindex, vocab
from soundseek.index.hybrid import fuse

SR = 16000
NAMES = ["orc-small-hit-1.wav", "orc-small-hit-2.wav", "orc-small-hit-3.wav", "drum_heavy_kick.flac",
         "metal_door_slam.wav", "drum_splash_soft.flac", "water_splash.wav", "wardrums.ogg", "bd_808.flac",
         "bd_haus.flac", "whoosh_01.wav", "footsteps_gravel.wav", "DoorCreak01.wav", "rain_on_roof.wav",
         "AMB_Forest Birds_JD_Lib.wav", "thunder.wav"]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    root = tmp_path_factory.mktemp("words") / "lib"
    root.mkdir()
    rng = np.random.default_rng(1)
    for n in NAMES:
        ext = n.rsplit(".", 1)[1]
        sf.write(root / n, (0.1 * rng.standard_normal(SR // 4)).astype(np.float32), SR, format=ext.upper())
    idx = root.parent / "idx"
    build_index(root, HashEmbedder(), idx, progress=False, window=0)
    return Searcher(idx, HashEmbedder())


def _names(hits):
    return [h["name"] for h in hits]


def test_a_generic_modifier_alone_is_not_a_match(lib):
    """Hybrid "a small dog barking" returned five orc-small-hit-* (matched word: small)."""
    assert _names(lib.search_text("a small dog barking", k=10, mode="text")) == []
    hybrid = lib.search_text("a small dog barking", k=10, mode="hybrid")
    assert all(h["why"]["text"] is None for h in hybrid)  # nothing ranked for the word "small"


def test_heavy_metal_door_ranks_the_door_not_the_heavy_kick(lib):
    """"a heavy metal door slams shut" put drum_heavy_kick.flac second."""
    names = _names(lib.search_text("a heavy metal door slams shut", k=10, mode="text"))
    assert names[0] == "metal_door_slam.wav" and "drum_heavy_kick.flac" not in names


def test_water_splash_prefers_covering_both_words(lib):
    """"water splash" found the cymbal drum_splash_*: a partial match ranks and fuses lower."""
    hits = lib.search_text("water splash", k=10, mode="text")
    assert _names(hits)[0] == "water_splash.wav"
    cov = {h["name"]: h["why"]["coverage"] for h in hits}
    assert cov["water_splash.wav"] == 1.0 and cov["drum_splash_soft.flac"] < 0.7


def test_compound_names_are_split(lib):
    """"war drums" never found wardrums.ogg; names such as DoorCreak01 are words too."""
    assert _names(lib.search_text("war drums", k=3, mode="text"))[0] == "wardrums.ogg"
    assert _names(lib.search_text("wardrums", k=3, mode="text"))[0] == "wardrums.ogg"
    assert "DoorCreak01.wav" in _names(lib.search_text("door creak", k=3, mode="text"))[:1]


def test_abbreviations_and_synonyms_match_both_ways(lib):
    """"bass drum" missed bd_* (the abbreviation was not understood)."""
    assert set(_names(lib.search_text("bass drum", k=2, mode="text"))) == {"bd_808.flac", "bd_haus.flac"}
    assert set(_names(lib.search_text("bd", k=2, mode="text"))) == {"bd_808.flac", "bd_haus.flac"}
    assert _names(lib.search_text("swoosh", k=1, mode="text")) == ["whoosh_01.wav"]
    assert _names(lib.search_text("ftstp", k=1, mode="text")) == ["footsteps_gravel.wav"]
    assert _names(lib.search_text("forest ambience", k=1, mode="text")) == ["AMB_Forest Birds_JD_Lib.wav"]


def test_vocabulary_helpers():
    assert vocab.split_compound("wardrums") == ("war", "drums")
    assert vocab.split_compound("doorcreak") == ("door", "creak")
    assert vocab.split_compound("xqzvbnm") == ("xqzvbnm",)  # nothing known: kept whole
    assert vocab.split_compound("thunder") == ("thunder",)  # a word itself
    assert vocab.canonical("BD") == "bass drum" and vocab.canonical("whsh") == "whoosh"
    assert textindex.query_terms("DoorCreak01 wardrums") == ["door", "creak", "01", "war", "drums"]
    assert all(w not in vocab.SYNONYMS for w in vocab.GENERIC)


def test_fusion_scales_the_text_term_by_coverage():
    sem = {1: 0.5, 2: 0.4, 3: 0.3}
    for cov in (1.0, 0.3):
        got = {i: f for i, f, _, _ in fuse(sem, {3: 2.0, 2: 1.0}, 0.7, coverage={3: cov})}
        assert got[3] == pytest.approx(0.3 / 63 + 0.7 * cov / 61)  # ranks: semantic 3, text 1
        assert got[2] == pytest.approx(0.3 / 62 + 0.7 / 62)  # no coverage given: a full match


def test_an_old_index_is_migrated_on_open(lib, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(lib.index_dir, old)
    s = Searcher(old, HashEmbedder())
    con = s.store.con
    with s.store.transaction() as c:  # as written before the vocabulary: no expansions, no version
        for rowid, key in c.execute("SELECT i.id, i.key FROM items i").fetchall():
            c.execute("UPDATE text_fts SET name=?, labels='' WHERE rowid=?", (key.rsplit(".", 1)[0].replace("_", " "), rowid))
        c.execute("DELETE FROM state WHERE k='text_version'")
    assert textindex.needs_migration(con)
    assert _names(s.search_text("war drums", k=1, mode="text")) != ["wardrums.ogg"]  # the old words
    s.store.close()
    s2 = Searcher(old, HashEmbedder())
    assert not textindex.needs_migration(s2.store.con)
    assert _names(s2.search_text("war drums", k=1, mode="text")) == ["wardrums.ogg"]


def test_the_vocabulary_page_lists_the_tables():
    from pathlib import Path

    from soundseek.index.metadata import UCS_CATEGORIES

    doc = (Path(__file__).resolve().parents[1] / "docs" / "vocabulary.md").read_text(encoding="utf-8")
    for canon, alts in vocab.SYNONYMS.items():
        assert f"| {canon} | {', '.join(alts)} |" in doc
    assert ", ".join(sorted(vocab.GENERIC)) in doc
    assert all(f"| {k} | {v} |" in doc for k, v in UCS_CATEGORIES.items())


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact") / "lib"
    root.mkdir()
    rng = np.random.default_rng(2)
    for n in ["skeleton-hit-1.wav", "skeleton-hit-2.wav", "skeleton-big-hit-1.wav", "skeleton-big-hit-2.wav",
              "skeleton-hit-heavy.wav", "bd_808.flac", "bd_haus.flac", "drum_bass_hard.flac", "door_03.wav",
              "door_creak.wav", "doors.wav"]:
        sf.write(root / n, (0.1 * rng.standard_normal(SR // 4)).astype(np.float32), SR,
                 format=n.rsplit(".", 1)[1].upper())
    idx = root.parent / "idx"
    build_index(root, HashEmbedder(), idx, progress=False, window=0)
    return Searcher(idx, HashEmbedder())


@pytest.mark.parametrize("query, exact", [
    ("loud skeleton hit", {"skeleton-hit-1.wav", "skeleton-hit-2.wav"}),  # -big- is a modifier the query lacks
    ("heavy skeleton hit", {"skeleton-hit-1.wav", "skeleton-hit-2.wav", "skeleton-hit-heavy.wav"}),
    ("bass drum", {"bd_808.flac"}),  # read through the vocabulary; bd_haus says one more word
    ("a door", {"door_03.wav", "doors.wav"}),
])
def test_exact_names(named, query, exact):
    hits = textindex.search(named.store.con, query, 50)
    names = {h.id: n for n, h in ((named.store.items([h.id])[h.id]["key"], h) for h in hits)}
    assert {names[h.id] for h in hits if h.exact} == exact


def test_hybrid_ranks_exact_names_first_whatever_the_semantic_order(named):
    """Hybrid "loud skeleton hit" ranked skeleton-big-hit-* among the exact names and "short
    wail" put wail-long.wav above wail.wav: rank fusion let the semantic rank reorder them."""
    for query, exact in [("loud skeleton hit", {"skeleton-hit-1.wav", "skeleton-hit-2.wav"}),
                         ("bass drum", {"bd_808.flac"})]:
        names = _names(named.search_text(query, k=10, mode="hybrid"))
        assert set(names[: len(exact)]) == exact, names


def test_fusion_puts_the_first_set_ahead():
    sem = {1: 0.9, 2: 0.8, 3: 0.1, 4: 0.05}
    text = {3: 2.0, 4: 1.0, 1: 0.5}
    plain = [i for i, *_ in fuse(sem, text, 0.7)]
    tiered = [i for i, *_ in fuse(sem, text, 0.7, first={4, 2})]
    assert tiered[:2] == [x for x in plain if x in {4, 2}] and tiered[2:] == [x for x in plain if x not in {4, 2}]


def test_an_exact_name_is_at_least_a_possible_match(named):
    """A file named exactly what was asked for is never "weak": the words say it is the sound."""
    hits = named.search_text("loud skeleton hit", k=10, mode="hybrid")
    for h in hits:
        assert h["why"]["exact"] == (h["name"] in {"skeleton-hit-1.wav", "skeleton-hit-2.wav"})
        if h["why"]["exact"]:
            assert h["confidence"] in ("possible", "strong")
    assert any(h["confidence"] == "weak" for h in hits if not h["why"]["exact"])  # random vectors: the rest stay weak


def test_a_name_saying_every_query_word_is_at_least_a_possible_match(named):
    """Hybrid "bass drum" called drum_bass_hard.flac (cosine +0.57) and "door" called
    perc_door.flac weak, so the page said "no good match" over a door: the words were ignored."""
    hits = named.search_text("bass drum", k=20, mode="hybrid")
    full = {h["name"] for h in hits if (h["why"]["coverage"] or 0) >= 0.999}
    assert {"bd_808.flac", "bd_haus.flac", "drum_bass_hard.flac"} <= full
    for h in hits:
        assert (h["confidence"] != "weak") == (h["name"] in full), h  # random vectors: only the words lift a hit
