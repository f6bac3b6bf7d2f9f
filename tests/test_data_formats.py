"""Format readers on small fixtures in the exact published on-disk layouts."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.data.formats import FORMATS, detect_format, load_corpus
from soundseek.data.formats.audiocaps import load_audiocaps
from soundseek.data.formats.clotho import load_clotho
from soundseek.data.formats.esc50 import load_esc50
from soundseek.data.formats.folder import load_folder
from soundseek.data.formats.manifest import load_manifest
from soundseek.data.formats.wavcaps import load_wavcaps


def wav(path: Path, seconds: float = 0.2, sr: int = 8000, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = np.random.default_rng(seed).standard_normal(int(seconds * sr)).astype(np.float32) * 0.1
    sf.write(str(path), x, sr, format=path.suffix[1:].upper() if path.suffix != ".oga" else "OGG")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def messages(corpus) -> str:
    return "\n".join(str(p) for p in corpus.problems)


# ------------------------------------------------------------------ Clotho
def clotho_tree(root: Path) -> Path:
    head = "file_name,caption_1,caption_2,caption_3,caption_4,caption_5\n"
    write(root / "clotho_captions_development.csv", head
          + 'a.wav,"A dog barks, twice.",b2,c3,d4,e5\n'
          + "b.wav,one,two,three,four,five\n"
          + "missing.wav,one,two,three,four,five\n"
          + "c.wav,one,,three,four,five\n"
          + "a.wav,dup,dup,dup,dup,dup\n")
    write(root / "clotho_captions_validation.csv", head + "v.wav,1,2,3,4,5\n")
    write(root / "clotho_captions_evaluation.csv", "file_name,caption1\nx.wav,bad\n")
    write(root / "clotho_metadata_development.csv", "file_name,keywords,sound_id\na.wav,dog;bark;,123\n")
    for n in ("a", "b", "c"):
        wav(root / "development" / f"{n}.wav")
    wav(root / "validation" / "v.wav")
    return root


def test_clotho(tmp_path: Path) -> None:
    c = load_clotho(clotho_tree(tmp_path))
    assert [x.id for x in c] == ["a.wav", "b.wav", "c.wav", "v.wav"]
    a = c.clips[0]
    assert a.captions[0] == "A dog barks, twice." and len(a.captions) == 5
    assert a.split == "train" and a.meta["clotho_split"] == "development"
    assert a.tags == ["dog", "bark"] and a.meta["sound_id"] == "123"
    assert a.audio == (tmp_path / "development" / "a.wav").resolve()
    assert len(c.clips[2].captions) == 4 and c.clips[3].split == "val"
    msg = messages(c)
    assert "missing audio file" in msg and "missing.wav" in msg
    assert "empty caption 2" in msg and "clotho_captions_development.csv:5" in msg
    assert "duplicate id 'a.wav'" in msg and "clotho_captions_development.csv:6" in msg
    assert "wrong columns" in msg and "caption_5" in msg and "clotho_captions_evaluation.csv" in msg
    assert len(c.errors) == 3


def test_clotho_splits_and_errors(tmp_path: Path) -> None:
    root = clotho_tree(tmp_path)
    assert [x.id for x in load_clotho(root, splits=["val"])] == ["v.wav"]
    assert [x.id for x in load_clotho(root, splits="validation")] == ["v.wav"]
    with pytest.raises(ValueError, match="Invalid Clotho split 'dev'. Valid: development"):
        load_clotho(root, splits=["dev"])
    with pytest.raises(FileNotFoundError, match="Clotho root not found"):
        load_clotho(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="No clotho_captions"):
        load_clotho(wav(tmp_path / "empty" / "x.wav").parent)


# ------------------------------------------------------------------ AudioCaps
def test_audiocaps(tmp_path: Path) -> None:
    head = "audiocap_id,youtube_id,start_time,caption\n"
    write(tmp_path / "train.csv", head + "1,-0RWZT-miFs,30,A man speaks\n2,abcdefghijk,0,Rain falls\n"
          + "3,nofileXXXXX,0,Wind\n4,emptycapXXX,0,\n")
    write(tmp_path / "val.csv", head + "10,vvvvvvvvvvv,20,One\n11,vvvvvvvvvvv,20,Two\n12,vvvvvvvvvvv,25,Three\n")
    write(tmp_path / "test.csv", "youtube_id,caption\nx,y\n")
    wav(tmp_path / "train" / "-0RWZT-miFs.flac")
    wav(tmp_path / "audio" / "train" / "abcdefghijk.wav")
    wav(tmp_path / "vvvvvvvvvvv.ogg")
    wav(tmp_path / "train" / "emptycapXXX.wav")
    c = load_audiocaps(tmp_path)
    ids = {x.id: x for x in c}
    assert sorted(ids) == ["-0RWZT-miFs", "abcdefghijk", "emptycapXXX", "vvvvvvvvvvv"]
    assert ids["-0RWZT-miFs"].audio.name == "-0RWZT-miFs.flac" and ids["-0RWZT-miFs"].captions == ["A man speaks"]
    assert ids["-0RWZT-miFs"].meta == {"start_time": 30, "audiocap_ids": ["1"]}
    v = ids["vvvvvvvvvvv"]
    assert v.captions == ["One", "Two", "Three"] and v.split == "val" and v.meta["audiocap_ids"] == ["10", "11", "12"]
    msg = messages(c)
    assert "missing audio file for youtube_id 'nofileXXXXX'" in msg
    assert "empty caption" in msg and "has no captions" in msg
    assert "start_time '25'" in msg
    assert "wrong columns" in msg and "audiocap_id, youtube_id, start_time, caption" in msg
    assert [x.id for x in load_audiocaps(tmp_path, splits=["val"])] == ["vvvvvvvvvvv"]
    with pytest.raises(ValueError, match="Invalid AudioCaps split 'dev'. Valid: train, val, test"):
        load_audiocaps(tmp_path, splits="dev")


def test_audiocaps_search_order(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "audiocap_id,youtube_id,start_time,caption\n1,idA,0,cap\n2,idB,0,cap\n")
    wav(tmp_path / "idA.wav")
    wav(tmp_path / "train" / "idA.flac")  # root/train/ is searched before root/
    wav(tmp_path / "audio" / "YidB.wav")  # AudioSet-style name as the last resort
    c = load_audiocaps(tmp_path)
    assert c.clips[0].audio.parent.name == "train" and c.clips[1].audio.name == "YidB.wav"
    assert not c.problems


# ------------------------------------------------------------------ WavCaps
def test_wavcaps(tmp_path: Path) -> None:
    doc = {"num_captions_per_audio": 1, "data": [
        {"id": "180913", "file_name": "UK Mello.wav", "caption": "A mellow tone.", "audio": "wav_path",
         "duration": 0.2, "tags": ["mello"]},
        {"id": "2", "caption": "Explicit path.", "wav_path": "clips/two.flac", "duration": 0.2},
        {"id": "3", "caption": "Nothing on disk.", "audio": "wav_path", "duration": 1.0},
        {"id": "4", "audio": "wav_path"},
    ]}
    write(tmp_path / "fsd_final.json", json.dumps(doc))
    write(tmp_path / "bbc_final.json", json.dumps({"data": [{"id": "07075002.wav", "caption": "Birds.", "duration": 0.2,
                                                             "audio": "wav_path", "category": "Nature"}]}))
    wav(tmp_path / "fsd_final" / "180913.flac")
    wav(tmp_path / "clips" / "two.flac")
    wav(tmp_path / "07075002.flac")
    c = load_wavcaps(tmp_path)
    ids = {x.id: x for x in c}
    assert sorted(ids) == ["bbc_final/07075002.wav", "fsd_final/180913", "fsd_final/2"]
    f = ids["fsd_final/180913"]
    assert f.captions == ["A mellow tone."] and f.tags == ["mello"] and f.duration == 0.2 and f.split == "train"
    assert f.meta == {"file_name": "UK Mello.wav", "source": "fsd_final"}
    assert ids["bbc_final/07075002.wav"].meta["category"] == "Nature"
    msg = messages(c)
    assert "missing audio file for id '3'" in msg and "fsd_final.json:data[2]" in msg
    assert "wrong keys" in msg and "fsd_final.json:data[3]" in msg
    one = load_wavcaps(tmp_path / "bbc_final.json", audio_root=tmp_path)
    assert [x.id for x in one] == ["bbc_final/07075002.wav"]
    write(tmp_path / "bad" / "x.json", "{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_wavcaps(tmp_path / "bad")
    with pytest.raises(ValueError, match="Invalid WavCaps split 'test'. Valid: train"):
        load_wavcaps(tmp_path, splits=["test"])


# ------------------------------------------------------------------ ESC-50
def test_esc50(tmp_path: Path) -> None:
    write(tmp_path / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n"
          "1-100032-A-0.wav,1,0,dog,True,100032,A\n1-100038-A-14.wav,1,14,chirping_birds,False,100038,A\n"
          "2-1-A-0.wav,2,0,dog,True,1,A\n3-x-A-1.wav,x,1,rooster,False,x,A\n9-1-A-0.wav,9,0,dog,True,1,A\n"
          "4-1-A-0.wav,4,0,dog,True,1,A\n")
    for n in ("1-100032-A-0", "1-100038-A-14", "2-1-A-0", "9-1-A-0"):
        wav(tmp_path / "audio" / f"{n}.wav")
    c = load_esc50(tmp_path)
    assert [x.id for x in c] == ["1-100032-A-0.wav", "1-100038-A-14.wav", "2-1-A-0.wav"]
    b = c.clips[1]
    assert b.captions == ["chirping birds"] and b.split == "fold1" and b.tags == ["chirping_birds"]
    assert b.meta == {"fold": 1, "target": 14, "category": "chirping_birds", "esc10": False, "src_file": "100038",
                      "take": "A"}
    msg = messages(c)
    assert "fold/target must be integers" in msg and "fold 9 out of range" in msg
    assert "missing audio file" in msg and "4-1-A-0.wav" in msg
    assert [x.id for x in load_esc50(tmp_path, splits=[2])] == ["2-1-A-0.wav"]
    with pytest.raises(FileNotFoundError, match="esc50.csv"):
        load_esc50(tmp_path / "audio")


# ------------------------------------------------------------------ manifest
def test_manifest(tmp_path: Path) -> None:
    wav(tmp_path / "audio" / "a.wav")
    wav(tmp_path / "audio" / "sub" / "b.flac")
    lines = [
        {"audio": "audio/a.wav", "captions": ["first", " second  one "], "split": "train", "tags": ["t"],
         "duration": 0.2, "license": "CC0"},
        {"audio": "./audio/sub/b.flac", "caption": "single"},
        "{broken json",
        {"audio": "audio/none.wav", "captions": ["x"]},
        {"captions": ["no audio key"]},
        {"audio": "audio/a.wav", "captions": ["dup"]},
        {"audio": "audio/sub/b.flac", "captions": "not a list", "id": "other"},
    ]
    text = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n\n"
    man = write(tmp_path / "manifest.jsonl", text)
    c = load_manifest(man)
    assert c.name == tmp_path.name and [x.id for x in c] == ["audio/a.wav", "audio/sub/b.flac"]
    a, b = c.clips
    assert a.captions == ["first", "second one"] and a.split == "train" and a.tags == ["t"] and a.duration == 0.2
    assert a.meta == {"license": "CC0"} and b.captions == ["single"] and b.split is None
    assert b.audio == (tmp_path / "audio" / "sub" / "b.flac").resolve()
    msg = messages(c)
    assert "malformed JSON on line 3" in msg and "manifest.jsonl:3" in msg
    assert "missing audio file" in msg and "manifest.jsonl:4" in msg
    assert "wrong keys" in msg and "manifest.jsonl:5" in msg
    assert "duplicate id 'audio/a.wav'" in msg and "manifest.jsonl:6" in msg
    assert '"captions" must be a list' in msg and "manifest.jsonl:7" in msg
    assert [x.id for x in load_manifest(tmp_path, splits=["train"])] == ["audio/a.wav"]
    with pytest.raises(FileNotFoundError, match="No manifest.jsonl"):
        load_manifest(tmp_path / "audio")


# ------------------------------------------------------------------ folder
def test_folder(tmp_path: Path) -> None:
    for n in ("z.wav", "a/b.FLAC", "a/c.ogg", "d.aiff", ".hidden.wav", "._fork.wav"):
        wav(tmp_path / n)
    write(tmp_path / "notes.txt", "not audio")
    write(tmp_path / "z.txt", "a caption\n\nanother caption\n")
    wav(tmp_path / ".git" / "x.wav")
    c = load_folder(tmp_path)
    assert [x.id for x in c] == ["a/b.FLAC", "a/c.ogg", "d.aiff", "z.wav"]
    assert c.clips[-1].captions == ["a caption", "another caption"] and c.clips[0].captions == []
    assert not c.problems and all(x.split is None for x in c)
    with pytest.raises(ValueError, match="no splits"):
        load_folder(tmp_path, splits=["train"])


# ------------------------------------------------------------------ registry + detection
def test_detect_and_load_corpus(tmp_path: Path) -> None:
    clotho = clotho_tree(tmp_path / "clotho")
    write(tmp_path / "ac" / "train.csv", "audiocap_id,youtube_id,start_time,caption\n")
    write(tmp_path / "esc" / "meta" / "esc50.csv", "filename,fold,target,category,esc10,src_file,take\n")
    write(tmp_path / "wc" / "sb_final.json", json.dumps({"data": []}))
    write(tmp_path / "man" / "x.jsonl", "")
    write(tmp_path / "man" / "manifest.jsonl", "")
    wav(tmp_path / "plain" / "x.wav")
    expect = {clotho: "clotho", tmp_path / "ac": "audiocaps", tmp_path / "esc": "esc50", tmp_path / "wc": "wavcaps",
              tmp_path / "wc" / "sb_final.json": "wavcaps", tmp_path / "man" / "x.jsonl": "manifest",
              tmp_path / "man": "manifest", tmp_path / "plain": "folder"}
    for path, fmt in expect.items():
        assert detect_format(path) == fmt, path
    assert len(load_corpus(clotho)) == 4 and len(load_corpus(tmp_path / "plain")) == 1
    assert len(load_corpus(clotho, "clotho", splits=["val"])) == 1
    with pytest.raises(KeyError, match="Invalid dataset format 'clothoo'. Valid: auto, audiocaps, clotho, esc50"):
        load_corpus(clotho, "clothoo")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_corpus(tmp_path / "missing")
    assert FORMATS.names() == ["audiocaps", "clotho", "esc50", "folder", "manifest", "wavcaps"]


def test_real_sfx_dev_manifest() -> None:
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-sfx-dev"
    if not root.is_dir():
        pytest.skip("real-sfx-dev not present")
    c = load_corpus(root / "manifest.jsonl")
    assert len(c) == 463 and not c.problems
    assert all(x.captions and x.audio.is_file() for x in c)
    assert detect_format(root) == "manifest"
