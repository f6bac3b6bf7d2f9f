"""Extra captions, noisy-correspondence shuffling and hash-based splits."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from soundseek.data.augment import add_extra_captions, load_extra_captions, shuffle_captions
from soundseek.data.splits import assign_splits, group_key, hash_unit
from soundseek.data.types import Clip, Corpus


def corpus(n: int = 20, caps: int = 5) -> Corpus:
    splits = ["train"] * (n - 4) + ["val", "val", "test", "test"]
    return Corpus("toy", [Clip(f"c{i}", Path(f"/x/c{i}.wav"), [f"clip {i} caption {j}" for j in range(caps)], s)
                          for i, s in enumerate(splits)])


def test_load_extra_captions(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"c0": ["new a", " new  b "], "c1": "single", "zz": []}))
    assert load_extra_captions(tmp_path / "x.json") == {"c0": ["new a", "new b"], "c1": ["single"], "zz": []}
    (tmp_path / "long.csv").write_text("clip_id,caption\nc0,one\nc0,two\nc1,\nc2,three\n")
    assert load_extra_captions(tmp_path / "long.csv") == {"c0": ["one", "two"], "c1": [], "c2": ["three"]}
    (tmp_path / "wide.csv").write_text("file_name,caption_1,caption_2,caption_10\na.wav,x,,z\n")
    assert load_extra_captions(tmp_path / "wide.csv") == {"a.wav": ["x", "z"]}
    (tmp_path / "bad.csv").write_text("name,text\na,b\n")
    with pytest.raises(ValueError, match="expected an id column \\(clip_id or file_name\\)"):
        load_extra_captions(tmp_path / "bad.csv")
    (tmp_path / "bad.json").write_text(json.dumps({"c0": [1]}))
    with pytest.raises(ValueError, match="must be a string or a list of strings"):
        load_extra_captions(tmp_path / "bad.json")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="must be one of .json, .csv"):
        load_extra_captions(tmp_path / "x.txt")


def test_add_extra_captions_train_only() -> None:
    c = corpus()
    out = add_extra_captions(c, {"c0": ["extra", "clip 0 caption 1", "extra"], "c17": ["leak"], "nope": ["x"]})
    assert out.clips[0].captions[-1] == "extra" and len(out.clips[0].captions) == 6
    assert out.clips[0].meta["n_extra_captions"] == 1
    assert "leak" not in out.clips[17].captions and len(c.clips[0].captions) == 5  # input untouched
    msg = "\n".join(map(str, out.problems))
    assert "unknown clip id 'nope'" in msg and "clip 'c17' is in split 'val', not 'train'" in msg
    assert "leak" in add_extra_captions(c, {"c17": ["leak"]}, split=None).clips[17].captions


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.37, 0.5, 1.0])
def test_shuffle_exact_fraction(p: float) -> None:
    c = corpus(24, 5)
    out = shuffle_captions(c, p, seed=1)
    train = [x for x in out if x.split == "train"]
    n = sum(len(x.captions) for x in c if x.split == "train")
    moved = sum(sum(x.meta["caption_moved"]) for x in train)
    assert moved == round(p * n)
    # slow reference: a caption is moved iff its text is not one of its clip's originals
    orig = {x.id: set(x.captions) for x in c}
    owner = {t: x.id for x in c for t in x.captions}
    for x in train:
        for t, m, src in zip(x.captions, x.meta["caption_moved"], x.meta["caption_source"]):
            assert m == (t not in orig[x.id]) and owner[t] == src
    # the multiset of training captions is unchanged; val/test untouched
    assert Counter(t for x in train for t in x.captions) == Counter(t for x in c if x.split == "train"
                                                                     for t in x.captions)
    assert [x.captions for x in out if x.split != "train"] == [x.captions for x in c if x.split != "train"]
    assert all("caption_moved" not in x.meta for x in c)


def test_shuffle_seeded() -> None:
    c = corpus()
    a, b, d = (shuffle_captions(c, 0.3, seed=s) for s in (5, 5, 6))
    assert [x.captions for x in a] == [x.captions for x in b] != [x.captions for x in d]


def test_shuffle_dominated_and_errors() -> None:
    c = Corpus("d", [Clip("big", Path("/b"), [f"b{i}" for i in range(10)], "train"),
                     Clip("s1", Path("/1"), ["s1"], "train"), Clip("s2", Path("/2"), ["s2"], "train")])
    out = shuffle_captions(c, 4 / 12, seed=0)  # k=4: at most 2 from "big"
    assert sum(sum(x.meta["caption_moved"]) for x in out) == 4
    with pytest.raises(ValueError, match="p must be in"):
        shuffle_captions(c, 1.5)
    with pytest.raises(ValueError, match="at least two clips"):
        shuffle_captions(Corpus("x", [Clip("a", Path("/a"), ["a", "b"], "train")]), 0.5)


def test_group_key() -> None:
    assert group_key("audio/wesnoth/wolf-growl-1.ogg") == group_key("audio/wesnoth/wolf-growl-2.ogg") \
        == "audio/wesnoth/wolf-growl"
    assert group_key("beep 03.wav") == "beep" and group_key("x/123.wav") == "x/123"
    assert group_key("a/wolf-growl-1.ogg") != group_key("b/wolf-growl-1.ogg")


def test_assign_splits() -> None:
    ids = [f"sfx/take-{k}-{i}.wav" for k in range(60) for i in range(3)]
    c = Corpus("u", [Clip(i, Path("/" + i)) for i in ids] + [Clip("fixed", Path("/f"), split="test")])
    a = assign_splits(c, seed=0)
    assert a.clips[-1].split == "test" and assign_splits(c, seed=0, overwrite=True).clips[-1].split != "fixed"
    assert [x.split for x in a] == [x.split for x in assign_splits(c, seed=0)]
    assert [x.split for x in a] != [x.split for x in assign_splits(c, seed=1)]
    cnt = Counter(x.split for x in a.clips[:-1])
    assert set(cnt) == {"train", "val", "test"} and 0.55 < cnt["train"] / 180 < 0.85
    # slow reference for the hash rule
    for x in a.clips[:-1]:
        u = hash_unit(x.id, 0)
        assert x.split == ("train" if u < 0.7 else "val" if u < 0.85 else "test")
    assert hash_unit("audio/x.wav", 0) == pytest.approx(0.3791826323, abs=1e-9)  # pinned: same on every machine
    g = assign_splits(c, by="group")
    groups: dict[str, set] = {}
    for x in g.clips[:-1]:
        groups.setdefault(group_key(x.id), set()).add(x.split)
    assert all(len(s) == 1 for s in groups.values()) and len(groups) == 60
    # stable when clips are added
    more = Corpus("u", c.clips + [Clip("new.wav", Path("/n"))])
    assert [x.split for x in assign_splits(more).clips[:-1]] == [x.split for x in a]
    with pytest.raises(ValueError, match="sum to 1"):
        assign_splits(c, {"train": 0.9})
    with pytest.raises(ValueError, match="Invalid split key 'folder'. Valid: id, group"):
        assign_splits(c, by="folder")
