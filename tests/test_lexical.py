"""Tests of soundseek.analysis (lexical richness measures, caption readers, plots)."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from soundseek.analysis import (
    analyze_caption_files,
    caption_measures,
    compare_plots,
    lexical_report,
    mtld,
    read_captions,
    tokenize,
    ttr,
    vocabulary_size,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"


def test_tokenize():
    assert tokenize("A dog barks, then a bird-song; 2 cars pass!") == [
        "a", "dog", "barks", "then", "a", "birdsong", "cars", "pass",
    ]
    assert tokenize("   ") == []


def test_mtld_hand_worked():
    # forward: "a a" -> TTR 0.5 <= 0.72 closes a factor; "b c" is a remainder with TTR 1
    #   -> partial 0 -> 4 tokens / 1 factor = 4
    # backward: c b a a -> TTR 0.75 at the end, never <= 0.72 -> partial (1-0.75)/0.28
    #   -> 4 / 0.892857... = 4.48
    assert mtld(["a", "a", "b", "c"]) == pytest.approx((4 + 4 * 0.28 / 0.25) / 2)
    # threshold 0.8: backward pass now closes a factor at 0.75 as well -> 4 / 1
    assert mtld(["a", "a", "b", "c"], threshold=0.8) == pytest.approx(4.0)


def test_mtld_properties():
    assert mtld("one two three four five") == 5.0  # all distinct: no factor -> #tokens
    assert mtld(["x"] * 40) == pytest.approx(2.0)  # every pair "x x" is a factor
    seq = "the cat sat on the mat and the dog sat on the log".split()
    assert mtld(seq) == pytest.approx(mtld(seq[::-1]))  # bidirectional average is symmetric
    richer = "a b c d e f g h a b c d e f g h".split()
    poorer = "a b a b a b a b a b a b a b a b".split()
    assert mtld(richer) > mtld(poorer)
    with pytest.raises(ValueError, match="empty token list"):
        mtld("")
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        mtld("a b", threshold=1.0)


def _random_captions(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    words = "a the dog cat bird water rain car engine loud soft distant birds chirp while people talk".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 30))) for _ in range(n)]


def test_mtld_matches_lexicalrichness():
    lr = pytest.importorskip("lexicalrichness")
    caps = _random_captions(0, 60)
    if DATA.exists():
        caps += read_captions(DATA / "manifest.jsonl")[:200]
    for cap in caps:
        ref = lr.LexicalRichness(cap)
        if ref.words == 0:
            continue
        assert tokenize(cap) == ref.wordlist
        assert mtld(cap) == pytest.approx(ref.mtld(threshold=0.72), rel=1e-12)
        assert ttr(cap) == pytest.approx(ref.ttr)
    stream = " ".join(caps)
    assert mtld(stream) == pytest.approx(lr.LexicalRichness(stream).mtld(), rel=1e-12)


def test_ttr_vocabulary_and_report():
    caps = ["A dog barks.", "a dog barks loudly", "", "Rain falls"]
    assert ttr("a a b b") == 0.5
    assert vocabulary_size(caps) == 6
    rep = lexical_report(caps)
    assert rep["n_captions"] == 4 and rep["n_empty"] == 1 and rep["n_tokens"] == 9
    assert rep["vocabulary_size"] == 6 and rep["ttr"] == pytest.approx(6 / 9)
    assert rep["caption_length"]["mean"] == pytest.approx(3.0)
    per = caption_measures(caps)
    assert per["length"].tolist() == [3.0, 4.0, 2.0]
    with pytest.raises(ValueError, match="no tokens"):
        lexical_report(["", "  "])


def test_read_captions_formats(tmp_path):
    (tmp_path / "c.txt").write_text("a dog barks\n\nrain falls\n")
    (tmp_path / "clotho.csv").write_text(
        "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
        'x.wav,one,two,"three, with comma",four,five\n'
    )
    (tmp_path / "audiocaps.csv").write_text("audiocap_id,youtube_id,start_time,caption\n1,y,0,a cat meows\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"audio": "a.wav", "captions": ["c1", "c2"]}) + "\n")
    (tmp_path / "w.json").write_text(json.dumps({"data": [{"id": "1", "caption": "wavcaps caption"}]}))
    assert read_captions(tmp_path / "c.txt") == ["a dog barks", "rain falls"]
    assert read_captions(tmp_path / "clotho.csv") == ["one", "two", "three, with comma", "four", "five"]
    assert read_captions(tmp_path / "audiocaps.csv") == ["a cat meows"]
    assert read_captions(tmp_path / "m.jsonl") == ["c1", "c2"]
    assert read_captions(tmp_path / "w.json") == ["wavcaps caption"]
    (tmp_path / "bad.csv").write_text("file_name,text\nx,y\n")
    with pytest.raises(ValueError, match="no caption column"):
        read_captions(tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="Unsupported caption file 'x.xml'. Valid suffixes"):
        read_captions(tmp_path / "x.xml")


def test_compare_plots_and_analyze(tmp_path):
    import matplotlib.image as mpimg

    human, generated = _random_captions(1, 80), _random_captions(2, 50)
    out = compare_plots(human, generated, tmp_path / "p" / "cmp.png", labels=("human", "llm"))
    img = mpimg.imread(out)
    assert img.shape[0] > 500 and img.shape[1] > 500 and img.std() > 0
    with pytest.raises(ValueError, match="Invalid measure"):
        compare_plots(human, generated, tmp_path / "x.png", measures=("mtld", "hdd"))
    (tmp_path / "a.txt").write_text("\n".join(human))
    (tmp_path / "b.txt").write_text("\n".join(generated))
    res = analyze_caption_files(tmp_path / "a.txt", tmp_path / "b.txt", out_dir=tmp_path / "out")
    assert set(res["sets"]) == {"a", "b"} and Path(res["plot"]).exists()
    saved = json.loads(Path(res["report"]).read_text())
    assert saved["sets"]["a"]["n_captions"] == 80
    single = analyze_caption_files(tmp_path / "a.txt", out_dir=tmp_path / "one")
    assert list(single["sets"]) == ["a"] and Path(single["plot"]).exists()
