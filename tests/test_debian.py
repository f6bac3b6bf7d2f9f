from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.data import debian
from soundseek.data.debian import (
    EVAL_PACKAGES, REAL_SFX_DEV, RESERVED_EVAL, TRAIN_PACKAGES, PackageSpec, build_corpus,
    check_eval_packages, check_training_packages, fetch_package, select_packages,
)
from soundseek.data.debian_readers import dep5_license, opensfx_caption, parse_dep5, stamp_caption


def _tone(path: Path, seconds: float, freq: float = 440.0, sr: int = 16000, fmt: str | None = None) -> None:
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt)


def _fake_tree(root: Path) -> Path:
    """An unpacked 'package' with good sounds and every kind of junk."""
    snd = root / "usr" / "share" / "games" / "fakegame" / "sounds"
    _tone(snd / "explosionBig_01.wav", 0.5, 200)
    _tone(snd / "weapons" / "laser-shot.ogg", 0.3, 900, fmt="OGG")
    _tone(snd / "0123.wav", 0.4, 300)                             # no meaning
    _tone(snd / "long_ambience.wav", 20.0, 100, sr=8000)          # too long
    _tone(root / "usr/share/games/fakegame/music/theme.ogg", 1.0, 500, fmt="OGG")   # music folder
    (snd / "broken.wav").write_bytes(b"RIFF\x00\x00junk")         # unreadable
    (snd / "song.xm").write_bytes(b"Extended Module: x")           # not decodable
    (snd / "readme.txt").write_text("not audio")                   # ignored entirely
    (snd / "zz_explosion_copy.wav").write_bytes((snd / "explosionBig_01.wav").read_bytes())  # duplicate
    doc = root / "usr/share/doc/fakegame-data"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: me\nLicense: GPL-2+\n\n"
        "Files: data/sounds/weapons/*\nCopyright: someone\nLicense: CC0\n")
    return root


def _build(tmp_path: Path, out: Path, **kw) -> debian.BuildResult:
    tree = tmp_path / "tree"
    if not tree.exists():
        _fake_tree(tree)
    spec = PackageSpec("fakegame-data", "GPL-2.0-or-later", folder_context=True)
    return build_corpus(out, [spec], tmp_path / "cache", fetch=lambda name, cache: tree,
                        resolve=lambda n: [n], **kw)


def test_build_on_fake_tree_keeps_good_sounds_and_reports_junk(tmp_path):
    out = tmp_path / "corpus"
    res = _build(tmp_path, out)
    rows = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["captions"] for r in rows] == [["explosion big"], ["weapon laser shot"]]
    assert rows[0]["audio"] == "audio/fakegame-data/fakegame/sounds/explosionBig_01.wav"
    assert rows[0]["source"] == "fakegame-data (Debian)"
    assert rows[0]["license"] == "GPL-2.0-or-later"        # catch-all stanza -> package default
    assert rows[1]["license"] == "CC0-1.0"                  # specific DEP-5 stanza
    assert rows[0]["duration"] == pytest.approx(0.5, abs=1e-3)
    assert (out / rows[1]["audio"]).read_bytes() == (tmp_path / "tree" / rows[1]["origin"]).read_bytes()
    rep = res.reports[0]
    assert rep.found == 8 and rep.kept == 2
    reasons = {k: len(v) for k, v in rep.skipped.items()}
    assert reasons == {"name carries no meaning": 1, "duration outside [0.05, 15] s": 1, "music/doc folder": 1,
                       "unreadable (LibsndfileError)": 1, "format .xm not decoded by libsndfile": 1,
                       "duplicate (same bytes)": 1}
    report = json.loads((out / "report.json").read_text())
    assert report["fakegame-data"]["kept"] == 2


def test_build_is_idempotent_and_atomic(tmp_path):
    out = tmp_path / "corpus"
    _build(tmp_path, out)
    first = (out / "manifest.jsonl").read_bytes()
    audio = out / "audio/fakegame-data/fakegame/sounds/explosionBig_01.wav"
    mtime = audio.stat().st_mtime_ns
    _build(tmp_path, out)
    assert (out / "manifest.jsonl").read_bytes() == first
    assert audio.stat().st_mtime_ns == mtime                 # unchanged copies are not rewritten
    assert not list(out.glob(".*.tmp*"))                     # no temp files left behind


def test_avoid_drops_clips_of_another_corpus(tmp_path):
    other = tmp_path / "other"
    _tone(other / "audio" / "x.ogg", 0.3, 900, fmt="OGG")
    _fake_tree(tmp_path / "tree")
    # make the other corpus hold exactly the laser file
    laser = tmp_path / "tree/usr/share/games/fakegame/sounds/weapons/laser-shot.ogg"
    (other / "audio" / "x.ogg").write_bytes(laser.read_bytes())
    (other / "manifest.jsonl").write_text(json.dumps({"audio": "audio/x.ogg", "captions": ["laser"]}) + "\n")
    res = _build(tmp_path, tmp_path / "corpus", avoid=[other / "manifest.jsonl"])
    assert [r["captions"] for r in res.rows] == [["explosion big"]]
    assert res.reports[0].skipped["in an avoided corpus"] == [
        "usr/share/games/fakegame/sounds/weapons/laser-shot.ogg"]


def test_manifest_loads_with_the_formats_reader(tmp_path):
    formats = pytest.importorskip("soundseek.data.formats")
    out = tmp_path / "corpus"
    _build(tmp_path, out)
    corpus = formats.load_corpus(out / "manifest.jsonl", "manifest")
    assert len(corpus.clips) == 2 and not [p for p in corpus.problems if p.severity == "error"]


@pytest.mark.parametrize("bad", ["openttd-opensfx", "tuxpaint-stamps-default", "tuxpaint-stamps-extra",
                                 "sonic-pi-samples", "wesnoth-1.16-data", "wesnoth-1.18-data",
                                 "sound-theme-freedesktop"])
def test_reserved_and_real_sfx_dev_packages_never_train(bad):
    with pytest.raises(ValueError, match="reserved for independent evaluation|real-sfx-dev source"):
        check_training_packages([bad])
    with pytest.raises(ValueError, match=bad):
        select_packages(["oxygen-sounds", bad], evaluation=False)


def test_builtin_training_list_is_clean():
    import fnmatch

    names = [s.name for s in TRAIN_PACKAGES]
    for name in names:
        for pat in RESERVED_EVAL + REAL_SFX_DEV:
            assert not fnmatch.fnmatchcase(name, pat), (name, pat)
    assert "openttd-opensfx" not in names and not any(n.startswith(("tuxpaint-stamps", "wesnoth")) for n in names)
    check_training_packages(names)
    assert len(names) == len(set(names))
    assert {s.name for s in EVAL_PACKAGES} == set(RESERVED_EVAL)
    check_eval_packages(s.name for s in EVAL_PACKAGES)
    with pytest.raises(ValueError, match="not reserved; valid: openttd-opensfx, tuxpaint-stamps-"):
        select_packages(["hedgewars-data"], evaluation=True)


def test_fetch_package_downloads_once_and_caches(tmp_path):
    calls: list[list[str]] = []

    def fake_run(cmd, cwd=None, check=False, capture_output=False, text=False):
        calls.append(cmd)
        if cmd[:2] == ["apt-get", "download"]:
            (Path(cwd) / f"{cmd[2]}_1.0_all.deb").write_bytes(b"deb")
        elif cmd[0] == "dpkg":
            (Path(cmd[3]) / "usr").mkdir()
        return subprocess.CompletedProcess(cmd, 0, "", "")

    tree = fetch_package("foo-data", tmp_path, run=fake_run)
    assert (tree / "usr").is_dir() and tree == tmp_path / "trees" / "foo-data"
    assert [c[0] for c in calls] == ["apt-get", "dpkg"]
    fetch_package("foo-data", tmp_path, run=fake_run)
    assert len(calls) == 2                                   # cached: no new download or unpack


def test_fetch_package_reports_download_failure(tmp_path):
    def failing(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate package nope")

    with pytest.raises(FileNotFoundError, match="apt-get download nope failed: E: Unable to locate"):
        fetch_package("nope", tmp_path, run=failing)


def test_dep5_license_matches_installed_path_tails():
    text = ("Files: *\nCopyright: x\nLicense: GPL-2\n\n"
            "Files: share/hedgewars/Data/Sounds/*\nCopyright: y\nLicense: GFDL-1.3\n\n"
            "Files: share/hedgewars/Data/Sounds/Droplet*.ogg\nCopyright: z\nLicense: CC-BY-SA-3.0\n")
    st = parse_dep5(text)
    assert dep5_license(st, "usr/share/games/hedgewars/Data/Sounds/Droplet1.ogg") == "CC-BY-SA-3.0"
    assert dep5_license(st, "usr/share/games/hedgewars/Data/Sounds/bee.ogg") == "GFDL-1.3"
    assert dep5_license(st, "usr/share/games/other/x.ogg") is None


def _cat(entries: list[tuple[str, bytes]]) -> bytes:
    head = 8 * len(entries)
    index, body = b"", b""
    for name, wav in entries:
        raw = name.encode() + b"\0"
        index += struct.pack("<II", (head + len(body)) | 0x80000000, len(wav))
        body += bytes([len(raw)]) + raw + wav
    return struct.pack("<I", struct.unpack("<I", index[:4])[0]) + index[4:] + body


def test_opensfx_archive_reader(tmp_path):
    import io

    buf = io.BytesIO()
    sf.write(buf, np.zeros(800, np.float32), 8000, format="WAV", subtype="PCM_16")
    wav = buf.getvalue()
    data = _cat([('"Toyland: Comedy bus start (1)". By A. License: Creative Commons Zero 1.0.', wav),
                 ('"Unused/Nothing". Trivial empty sound file.', wav[:44]),
                 ('"Steam (of steam engine)". By B. License: Creative Commons Attribution 3.0 Unported.', wav)])
    tree = tmp_path / "tree"
    (tree / "usr/share/games/openttd/baseset/opensfx").mkdir(parents=True)
    (tree / "usr/share/games/openttd/baseset/opensfx/opensfx.cat").write_bytes(data)
    spec = PackageSpec("openttd-opensfx", "CC-BY-SA-3.0", reader="opensfx")
    res = build_corpus(tmp_path / "out", [spec], tmp_path / "cache", fetch=lambda n, c: tree,
                       resolve=lambda n: [n], min_duration=0.0)
    assert [(r["captions"][0], r["license"]) for r in res.rows] == [("comedy bus start", "CC0-1.0")]
    assert (tmp_path / "out" / res.rows[0]["audio"]).read_bytes() == wav   # cut out byte for byte
    assert set(res.reports[0].skipped) == {"name carries no meaning", "duplicate (same bytes)"}
    assert opensfx_caption("Truck/old bus start, pull away") == "truck or old bus start pull away"


def test_tuxpaint_stamp_reader(tmp_path):
    stamps = tmp_path / "tree/usr/share/tuxpaint/stamps/animals"
    _tone(stamps / "cat.ogg", 0.5, 700, fmt="OGG")
    (stamps / "cat.png").write_bytes(b"png")
    (stamps / "cat.txt").write_text("A tabby cat.\nfr.utf8=Un chat.\n")
    _tone(stamps / "cat_desc.ogg", 0.5, 710, fmt="OGG")       # spoken description
    _tone(stamps / "cat_fr.ogg", 0.5, 720, fmt="OGG")         # localised spoken name
    _tone(stamps / "dog_barking.ogg", 0.5, 730, fmt="OGG")
    (stamps / "dog_barking.svg").write_text("<svg/>")
    assert stamp_caption(stamps / "cat.ogg") == "tabby cat"
    res = build_corpus(tmp_path / "out", [EVAL_PACKAGES[1]], tmp_path / "cache",
                       fetch=lambda n, c: tmp_path / "tree", resolve=lambda n: ["tuxpaint-stamps-default"])
    assert sorted(r["captions"][0] for r in res.rows) == ["dog barking", "tabby cat"]
    assert set(res.reports[0].skipped) == {"spoken description", "localised spoken name"}


@pytest.mark.slow
def test_real_download_of_a_small_theme(tmp_path):
    import shutil

    if not (shutil.which("apt-get") and shutil.which("dpkg")):
        pytest.skip("needs apt-get and dpkg")
    res = build_corpus(tmp_path / "out", select_packages(["yaru-theme-sound"], evaluation=False), tmp_path / "cache")
    assert len(res.rows) >= 10
    assert all(r["source"] == "yaru-theme-sound (Debian)" for r in res.rows)
