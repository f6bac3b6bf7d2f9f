"""Collections (favourites and named sets) kept beside an index: by content hash, so they
survive moves within the library, re-indexing and rebuilds; exported as a list of absolute
paths or a folder of links or copies; driven from the CLI."""
from __future__ import annotations

import os
import shutil

import pytest

from index_helpers import make_audio_folder
from soundseek.cli.main import main
from soundseek.index import HashEmbedder, build_index
from soundseek.index.collections import Collections, check_name
from soundseek.index.store import Store


@pytest.fixture()
def lib(tmp_path):
    root = tmp_path / "sounds"
    freqs = make_audio_folder(root, n=6, bad=False)
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False)
    return root, tmp_path / "idx", sorted(freqs)


def _ids(idx):
    return {r["key"]: r["id"] for r in Store(idx).known().values()}


def test_collections_follow_the_content_through_moves_and_rebuilds(lib):
    root, idx, keys = lib
    cols = Collections(Store(idx))
    ids = _ids(idx)
    assert cols.add("favourites", [ids[keys[0]], ids[keys[1]]]) == 2
    assert cols.add("favourites", [ids[keys[0]]]) == 0  # already there
    assert [c["name"] for c in cols.names()] == ["favourites"]
    # move a file within the library and re-index: the same content, a new path and id
    moved = root / "elsewhere" / "renamed.wav"
    moved.parent.mkdir()
    os.rename(root / keys[0], moved.with_suffix(os.path.splitext(keys[0])[1]))
    build_index(root, HashEmbedder(), idx, progress=False)
    items = Collections(Store(idx)).items("favourites")
    new_key = "elsewhere/" + moved.with_suffix(os.path.splitext(keys[0])[1]).name
    assert [it["path"] for it in items] == [new_key, keys[1]]
    assert items[0]["abs_path"] == str(root / new_key) and items[0]["id"] == _ids(idx)[new_key]
    # a rebuild replaces index.sqlite; the collections stay
    build_index(root, HashEmbedder(), idx, progress=False, rebuild=True)
    assert [it["path"] for it in Collections(Store(idx)).items("favourites")] == [new_key, keys[1]]
    # a deleted file stays listed by its last path, without an id
    os.unlink(root / keys[1])
    build_index(root, HashEmbedder(), idx, progress=False)
    gone = Collections(Store(idx)).items("favourites")[1]
    assert gone["id"] is None and gone["abs_path"] is None and gone["key"] == keys[1]
    assert Collections(Store(idx)).remove("favourites", sha1s=[gone["sha1"]]) == 1


def test_export_list_links_and_copies(lib, tmp_path):
    root, idx, keys = lib
    cols = Collections(Store(idx))
    ids = _ids(idx)
    cols.add("pick", [ids[k] for k in keys[:3]])
    dest, n = cols.export("pick", tmp_path / "pick.txt")
    assert n == 3 and dest.read_text().splitlines() == [str(root / k) for k in keys[:3]]
    dest, n = cols.export("pick", tmp_path / "links", how="links")
    assert sorted(os.listdir(dest)) == sorted(os.path.basename(k) for k in keys[:3])
    assert all(os.path.islink(dest / f) and os.readlink(dest / f) == str(root / k)
               for k, f in ((k, os.path.basename(k)) for k in keys[:3]))
    dest, n = cols.export("pick", tmp_path / "copies", how="copies")
    assert all((dest / os.path.basename(k)).read_bytes() == (root / k).read_bytes() for k in keys[:3])
    with pytest.raises(FileExistsError, match="already exists"):
        cols.export("pick", tmp_path / "links", how="links")
    with pytest.raises(ValueError, match="export as one of list, links, copies"):
        cols.export("pick", tmp_path / "x", how="zip")
    with pytest.raises(KeyError, match="no collection 'nope'; have: pick"):
        cols.export("nope", tmp_path / "y.txt")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no half-written folders left


def test_same_file_names_in_two_folders_export_apart(tmp_path):
    root = tmp_path / "s"
    make_audio_folder(root, n=2, bad=False)
    (root / "b").mkdir()
    shutil.copy(root / "low" / "tone_00.wav", root / "b" / "tone_00.wav")
    with open(root / "b" / "tone_00.wav", "ab") as f:
        f.write(b"\0\0")  # other content, same name
    build_index(root, HashEmbedder(), tmp_path / "idx", progress=False)
    cols = Collections(Store(tmp_path / "idx"))
    ids = _ids(tmp_path / "idx")
    cols.add("x", [ids["low/tone_00.wav"], ids["b/tone_00.wav"]])
    dest, n = cols.export("x", tmp_path / "out", how="links")
    assert n == 2 and sorted(os.listdir(dest)) == ["tone_00-2.wav", "tone_00.wav"]


@pytest.mark.parametrize("name, msg", [("", "empty"), ("   ", "empty"), ("a/b", "slash"), ("a\\b", "slash"),
                                       ("x\x00y", "control"), ("x" * 81, "too long"), ("rtl\u202eoverride", "control")])
def test_bad_names_are_refused(name, msg):
    with pytest.raises(ValueError, match=msg):
        check_name(name)


def test_unknown_items_and_collections(lib):
    _, idx, _ = lib
    cols = Collections(Store(idx))
    assert cols.names() == [] and not (idx / "collections.sqlite").exists()  # reading creates nothing
    with pytest.raises(KeyError, match="no indexed file with id 999999"):
        cols.add("x", [999999])
    with pytest.raises(KeyError, match="no collection 'x'; have: none yet"):
        cols.items("x")


def test_cli(lib, tmp_path, capsys, monkeypatch):
    root, idx, keys = lib
    monkeypatch.chdir(tmp_path)
    assert main(["collections", "add", "door ideas", str(root / keys[0]), keys[1], "--index", str(idx)]) == 0
    assert "2 added" in capsys.readouterr().out
    assert main(["collections", "list", "--index", str(idx)]) == 0
    assert capsys.readouterr().out.split() == ["2", "door", "ideas"]
    assert main(["collections", "show", "door ideas", "--index", str(idx)]) == 0
    assert capsys.readouterr().out.splitlines() == [str(root / keys[0]), str(root / keys[1])]
    assert main(["collections", "export", "door ideas", "picked", "--as", "links", "--index", str(idx)]) == 0
    assert sorted(os.listdir(tmp_path / "picked")) == sorted(os.path.basename(k) for k in keys[:2])
    assert main(["collections", "export", "door ideas", "-", "--index", str(idx)]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [str(root / keys[0]), str(root / keys[1])]
    assert main(["collections", "remove", "door ideas", keys[0], "--index", str(idx)]) == 0
    assert "1 removed" in capsys.readouterr().out
    shutil.copy(root / keys[2], tmp_path / "copy_elsewhere.bin")  # a copy outside the library: found by content
    assert main(["collections", "add", "door ideas", "copy_elsewhere.bin", "--index", str(idx)]) == 0
    assert [it["path"] for it in Collections(Store(idx)).items("door ideas")] == [keys[1], keys[2]]
    # one-line errors
    assert main(["collections", "add", "x", "no/such.wav", "--index", str(idx)]) == 2
    assert "no/such.wav is not in the index" in capsys.readouterr().err
    assert main(["collections", "show", "nope", "--index", str(idx)]) == 2
    assert "no collection 'nope'; have: door ideas" in capsys.readouterr().err
    assert main(["collections", "list", "--index", str(tmp_path / "missing")]) == 2
    assert "soundseek index FOLDER --index" in capsys.readouterr().err
    assert main(["collections", "delete", "door ideas", "--index", str(idx)]) == 0
    with pytest.raises(SystemExit):
        main(["collections", "export", "x", "y", "--as", "zip", "--index", str(idx)])
