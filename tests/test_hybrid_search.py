"""Hybrid search over names and embedded tags: the metadata readers (RIFF INFO, bext, iXML,
Vorbis comments, ID3v2/v1, UCS names) on files written here, the FTS5 text index, the fusion,
and a planted library whose tags describe the sounds."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.index import HashEmbedder, Searcher, build_index
from soundseek.index.hybrid import fuse, resolve_mode
from soundseek.index.metadata import path_words, read_tags, ucs_words
from soundseek.index.textindex import query_terms

SR = 16000
REPO = Path(__file__).resolve().parents[1]


def _noise(seed: int, seconds: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(SR * seconds))).astype(np.float32)


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def write_bwf(path: Path, wave: np.ndarray, description: str = "", info: dict | None = None,
              ixml: str = "", before_data: bool = True) -> None:
    """A WAV with a Broadcast-WAV ``bext`` chunk, a LIST/INFO chunk and an iXML chunk."""
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="WAV", subtype="PCM_16")
    raw = buf.getvalue()
    extra = b""
    if description:
        bext = description.encode("latin-1").ljust(256, b"\0") + b"Planted Lib".ljust(32, b"\0")
        extra += _chunk(b"bext", bext + b"\0" * 314)
    if info:
        ids = {"title": b"INAM", "comment": b"ICMT", "keywords": b"IKEY"}
        body = b"INFO" + b"".join(_chunk(ids[k], v.encode() + b"\0") for k, v in info.items())
        extra += _chunk(b"LIST", body)
    if ixml:
        extra += _chunk(b"iXML", ixml.encode())
    pos = raw.index(b"data") if before_data else len(raw)
    out = raw[:pos] + extra + raw[pos:]
    out = out[:4] + struct.pack("<I", len(out) - 8) + out[8:]
    path.write_bytes(out)


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def id3v23(frames: dict[str, str]) -> bytes:
    """An ID3v2.3 tag: text frames in UTF-16 with BOM; ``COMM`` as a comment frame."""
    body = b""
    for fid, text in frames.items():
        enc = b"\x01" + "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")
        payload = (b"\x01eng" + b"\xff\xfe\x00\x00" + "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")
                   if fid == "COMM" else enc)
        body += fid.encode() + struct.pack(">I", len(payload)) + b"\0\0" + payload
    return b"ID3\x03\x00\x00" + _syncsafe(len(body)) + body


def id3v24_utf8(frames: dict[str, str]) -> bytes:
    body = b""
    for fid, text in frames.items():
        payload = b"\x03" + text.encode("utf-8")
        body += fid.encode() + _syncsafe(len(payload)) + b"\0\0" + payload
    return b"ID3\x04\x00\x00" + _syncsafe(len(body)) + body


def write_mp3(path: Path, wave: np.ndarray, tag: bytes) -> None:
    buf = io.BytesIO()
    sf.write(buf, wave, SR, format="MP3")
    path.write_bytes(tag + buf.getvalue())


def write_vorbis(path: Path, wave: np.ndarray, fmt: str, **fields: str) -> None:
    with sf.SoundFile(path, "w", SR, 1, format=fmt) as f:
        for k, v in fields.items():
            setattr(f, k, v)
        f.write(wave)


# --- readers -------------------------------------------------------------------------------
def test_riff_bext_info_ixml(tmp_path):
    p = tmp_path / "a.wav"
    ixml = ("<?xml version='1.0'?><BWFXML><USER><DESCRIPTION>whale song &amp; sonar</DESCRIPTION>"
            "<CATEGORY>ANIMALS</CATEGORY></USER><NOTE>recorded offshore</NOTE></BWFXML>")
    write_bwf(p, _noise(0), description="Distant thunder rumble over hills",
              info={"title": "Storm approach", "keywords": "storm; weather"}, ixml=ixml)
    tags = read_tags(p)
    # bext description first, the iXML one appended (entities decoded, never expanded)
    assert tags["description"] == "Distant thunder rumble over hills | whale song & sonar"
    assert tags["originator"] == "Planted Lib"
    assert tags["title"] == "Storm approach" and tags["keywords"] == "storm; weather"
    assert tags["note"] == "recorded offshore" and tags["category"] == "ANIMALS"
    assert sf.info(p).frames == SR // 2  # the file still decodes
    # the same chunks after the audio data
    q = tmp_path / "b.wav"
    write_bwf(q, _noise(1), description="Glass bottle smash", before_data=False)
    assert read_tags(q)["description"] == "Glass bottle smash"


def test_vorbis_comments_flac_ogg(tmp_path):
    write_vorbis(tmp_path / "a.flac", _noise(0), "FLAC", title="Creaking door", comment="old wooden hinge")
    write_vorbis(tmp_path / "a.ogg", _noise(1), "OGG", title="Heavy rain", artist="Field Rec")
    assert read_tags(tmp_path / "a.flac") == {"title": "Creaking door", "comment": "old wooden hinge"}
    t = read_tags(tmp_path / "a.ogg")
    assert t["title"] == "Heavy rain" and t["artist"] == "Field Rec"


def test_id3_versions(tmp_path):
    write_mp3(tmp_path / "a.mp3", _noise(0), id3v23({"TIT2": "Glass shatter", "COMM": "window pane breaks"}))
    t = read_tags(tmp_path / "a.mp3")
    assert t["title"] == "Glass shatter" and t["comment"] == "window pane breaks"
    write_mp3(tmp_path / "b.mp3", _noise(1), id3v24_utf8({"TIT2": "Café crowd murmur", "TCON": "Ambience"}))
    t = read_tags(tmp_path / "b.mp3")
    assert t == {"title": "Café crowd murmur", "genre": "Ambience"}
    v1 = b"TAG" + b"Old tape hiss".ljust(30, b"\0") + b"\0" * 30 + b"\0" * 30 + b"1999" + b"noisy".ljust(30, b"\0") + b"\x0c"
    (tmp_path / "c.mp3").write_bytes((tmp_path / "a.mp3").read_bytes()[len(id3v23({"TIT2": "Glass shatter", "COMM": "window pane breaks"})):] + v1)
    assert read_tags(tmp_path / "c.mp3") == {"title": "Old tape hiss", "comment": "noisy"}


@pytest.mark.parametrize("payload", [
    b"", b"RIFF", b"RIFF\xff\xff\xff\xffWAVEbext\xff\xff\xff\x7f", b"fLaC\x84\xff\xff\xff",
    b"OggS" + b"\0" * 40, b"ID3\x03\x00\x00\x7f\x7f\x7f\x7fTIT2\xff\xff\xff\xff\0\0\x01",
    b"ID3\x04\x00\x40\x00\x00\x00\x10" + b"\xff" * 16, b"FORM\0\0\0\x10AIFFNAME\xff\xff\xff\xff",
])
def test_malformed_tags_never_raise(tmp_path, payload):
    p = tmp_path / "bad.mp3"
    p.write_bytes(payload)
    assert isinstance(read_tags(p), dict)
    assert read_tags(tmp_path / "missing.wav") == {}


def test_names_and_ucs():
    assert ucs_words("DOORWood_Creak Open Slow_JD_Lib") == ["doors", "wood"]
    assert ucs_words("AMBForst_Birds Morning_AB_Lib") == ["ambience", "forst"]
    assert ucs_words("README_notes") == [] and ucs_words("sword-1") == []
    name, folder = path_words("Foley/Doors/DOORWood_CreakSlow_JD_Lib.wav")
    assert name.split()[:3] == ["door", "wood", "creak"] and "doors" in name.split() and folder == "foley doors"
    assert path_words("wesnoth/sword-1.ogg") == ("sword 1", "wesnoth")
    assert query_terms("the Sound of a dog") == ["dog"] and query_terms("the") == ["the"]


def test_fusion_and_modes():
    assert resolve_mode(None, True) == "hybrid" and resolve_mode("auto", False) == "semantic"
    with pytest.raises(ValueError, match="Valid: semantic, text, hybrid"):
        resolve_mode("fuzzy", True)
    fused = fuse({1: 0.9, 2: 0.5, 3: 0.1}, {3: 7.0})
    assert [i for i, *_ in fused] == [3, 1, 2]  # 0.3/(60+3) + 0.7/(60+1) beats 0.3/(60+1)
    assert fuse({1: 0.9, 2: 0.5}, {2: 1.0}, weight=0.0)[0][0] == 1
    assert fuse({1: 0.9, 2: 0.5}, {2: 1.0}, weight=1.0)[0][0] == 2
    with pytest.raises(ValueError):
        fuse({}, {}, weight=1.5)


# --- a planted library -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Neutral file names; only the embedded tags (and one UCS name) describe the sounds."""
    root = tmp_path_factory.mktemp("planted") / "lib"
    root.mkdir()
    for i in range(8):  # distractors with neutral names and no tags
        sf.write(root / f"take_{i:02d}.wav", _noise(10 + i), SR)
    write_bwf(root / "take_20.wav", _noise(20), description="Distant thunder rumble over the valley")
    write_vorbis(root / "take_21.ogg", _noise(21), "OGG", comment="Old wooden door creaking open")
    write_vorbis(root / "take_22.flac", _noise(22), "FLAC", title="Kettle whistle")
    write_mp3(root / "take_23.mp3", _noise(23), id3v23({"TIT2": "Glass shatter"}))
    sf.write(root / "WATRDrip_Cave Drips_JD_Lib.wav", _noise(24), SR)
    idx = root.parent / "idx"
    rep = build_index(root, HashEmbedder(), idx, progress=False)
    assert rep.total == 13 and not rep.skipped
    return root, idx


@pytest.mark.parametrize("query, expected, word", [
    ("thunder", "take_20.wav", "thunder"),  # bext description
    ("creaking door", "take_21.ogg", "door"),  # Vorbis comment (Ogg)
    ("kettle", "take_22.flac", "kettle"),  # Vorbis comment (FLAC)
    ("glass", "take_23.mp3", "glass"),  # ID3 title
    ("water drips", "WATRDrip_Cave Drips_JD_Lib.wav", "water"),  # UCS category of the file name
])
def test_hybrid_finds_the_tagged_file_first(planted, query, expected, word):
    _, idx = planted
    s = Searcher(idx, HashEmbedder())
    assert s.has_text
    for mode in ("hybrid", None, "text"):
        hits = s.search_text(query, k=5, mode=mode)
        assert hits[0]["path"] == expected, (mode, [h["path"] for h in hits])
        assert word in hits[0]["why"]["matched"]
    hyb = s.search_text(query, k=5)[0]["why"]
    assert hyb["semantic"] is not None and hyb["text"] > 0  # both reasons reported
    sem = s.search_text(query, k=13, mode="semantic")
    assert len(sem) == 13 and all(h["why"]["matched"] == [] for h in sem)


def test_text_index_follows_changes(planted, tmp_path):
    root, idx = planted
    lib = tmp_path / "lib"
    lib.mkdir()
    for p in root.iterdir():
        (lib / p.name).write_bytes(p.read_bytes())
    build_index(lib, HashEmbedder(), tmp_path / "idx", progress=False)
    write_bwf(lib / "take_20.wav", _noise(20), description="Seagulls at the harbour")  # retagged
    (lib / "take_23.mp3").unlink()
    build_index(lib, HashEmbedder(), tmp_path / "idx", progress=False)
    s = Searcher(tmp_path / "idx", HashEmbedder())
    assert s.search_text("seagulls", k=3, mode="text")[0]["path"] == "take_20.wav"
    assert s.search_text("thunder", k=3, mode="text") == []
    assert s.search_text("glass", k=3, mode="text") == []


def test_cli_modes_json(planted):
    _, idx = planted
    env_py = [sys.executable, "-c", "import sys; from soundseek.index import HashEmbedder; "
              "from soundseek.index.cli import add_search_parser; import argparse; "
              "p = argparse.ArgumentParser(); sub = p.add_subparsers(dest='command'); add_search_parser(sub); "
              "a = p.parse_args(sys.argv[1:]); from soundseek.index.cli import run_search; sys.exit(run_search(a, lambda m: HashEmbedder()))"]
    r = subprocess.run(env_py + ["search", str(idx), "thunder", "--mode", "hybrid", "--json", "-k", "3"],
                       capture_output=True, text=True, env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.splitlines()[0])
    h = row["hits"][0]
    assert h["path"] == "take_20.wav" and h["why"]["matched"] == ["thunder"]
    assert {"start", "end", "score", "duration"} <= set(h)
    r = subprocess.run(env_py + ["search", str(idx), "thunder", "--mode", "text"], capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert r.returncode == 0 and "take_20.wav" in r.stdout and "words: thunder" in r.stdout
    r = subprocess.run(env_py + ["search", str(idx), "thunder", "--mode", "fuzzy"], capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO / "src")}, timeout=120)
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_tags_of_a_fifo_never_block(tmp_path):
    import os

    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    assert read_tags(fifo) == {}  # refused without opening for a read that would block
