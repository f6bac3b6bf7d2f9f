"""The training corpus builder: allow-list, archive readers (rcc, pk3, wv), metadata captions,
speech cap, caption templates, rendered instruments."""
from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.data.debian import TRAIN_PACKAGES, PackageSpec, build_corpus, select_packages
from soundseek.data.debian_archives import ArchiveError, read_rcc, read_zip, write_rcc
from soundseek.data.debian_captions import caption_from_path, caption_variants
from soundseek.data.debian_labels import hydrogen_labels, klettres_labels, ktuberling_labels, qabcs_labels


def _wav(seconds: float = 0.3, freq: float = 440.0, sr: int = 8000, fmt: str = "WAV") -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format=fmt)
    return buf.getvalue()


def _build(tmp_path: Path, tree: Path, spec: PackageSpec, **kw):
    return build_corpus(tmp_path / "out", [spec], tmp_path / "cache", fetch=lambda n, c: tree,
                        resolve=lambda n: [n], **kw)


# ------------------------------------------------------------------ allow-list
ISSUE_ADDITIONS = """qabcs-data hydrogen-drumkits hydrogen-data ufoai-sound lmms-common gcompris-qt-data emacspeak
triplea boswars-data overgod-data mazeofgalious-data wordwarvi-sound micropolis-data searchandrescue-data
crossfire-client krank etw-data neverball-common caveexpress-data teeworlds-data bucklespring-data widelands-data
flightgear-data-base redeclipse-data supertuxkart-data torcs-data ktuberling-data klettres-data
asterisk-core-sounds-en-wav""".split()


THIRD_ROUND = 23   # tests/test_debian_third_round.py::THIRD_ROUND


def test_allow_list_is_the_old_66_plus_exactly_the_new_packages():
    names = [s.name for s in TRAIN_PACKAGES]
    assert len(names) == len(set(names)) == 66 + len(ISSUE_ADDITIONS) + THIRD_ROUND
    speech = [s.name for s in TRAIN_PACKAGES if s.speech]
    assert set(names[66:66 + len(ISSUE_ADDITIONS) - len(speech)]) | set(speech) == set(ISSUE_ADDITIONS)


@pytest.mark.parametrize("bad", ["gamine-data", "freedoom", "tuxpaint-plugins-default", "sound-icons", "hedgewars"])
def test_names_outside_the_allow_list_are_refused(bad):
    with pytest.raises(ValueError, match=f"'{bad}' not on the training allow-list"):
        select_packages(["oxygen-sounds", bad], evaluation=False)
    assert [s.name for s in select_packages(["oxygen-sounds", "qabcs-data"], evaluation=False)] == [
        "oxygen-sounds", "qabcs-data"]


# ------------------------------------------------------------------ Qt rcc
def test_rcc_roundtrip_plain_and_compressed():
    files = {"gcompris/src/activities/farm/resource/animals/cow.ogg": b"moo" * 50,
             "gcompris/src/core/resource/sounds/bleep.wav": b"RIFFxxxx",
             "a.txt": b"t"}
    for compress in (False, True):
        got = dict(read_rcc(write_rcc(files, compress=compress)))
        assert got == files


def test_rcc_reader_rejects_bad_input():
    with pytest.raises(ArchiveError, match="no 'qres' magic"):
        list(read_rcc(b"PK\x03\x04" + bytes(40)))
    good = bytearray(write_rcc({"x/y.wav": b"abc"}))
    bad_version = good[:4] + struct.pack(">I", 9) + good[8:]
    with pytest.raises(ArchiveError, match="version 9"):
        list(read_rcc(bytes(bad_version)))
    truncated = bytes(good[:30])
    with pytest.raises(ArchiveError):
        list(read_rcc(truncated))
    # a directory whose child is itself: a cycle, not an endless walk
    tree_off = struct.unpack_from(">I", good, 8)[0]
    cyc = bytearray(good)
    struct.pack_into(">II", cyc, tree_off + 6, 1, 0)
    with pytest.raises(ArchiveError, match="cycle"):
        list(read_rcc(bytes(cyc)))


def test_sounds_inside_rcc_and_pk3_are_captioned_from_the_member_path(tmp_path):
    tree = tmp_path / "tree"
    rcc = tree / "usr/share/gcompris-qt/rcc"
    rcc.mkdir(parents=True)
    (rcc / "farm.rcc").write_bytes(write_rcc({
        "gcompris/src/activities/farm/resource/animals/cow.ogg": _wav(0.4, 300, fmt="OGG"),
        "gcompris/src/activities/farm/resource/door_close.wav": _wav(0.3, 500),
        "gcompris/src/activities/farm/resource/logo.svg": b"<svg/>"}, compress=True))
    base = tree / "usr/share/games/ufoai/base"
    base.mkdir(parents=True)
    with zipfile.ZipFile(base / "0snd.pk3", "w") as zf:
        zf.writestr("sound/weapons/laser_fire.wav", _wav(0.2, 900))
        zf.writestr("sound/footsteps/grass1.wav", _wav(0.2, 950))
        zf.writestr("../evil/escape.wav", _wav(0.2, 990))         # hostile member name: skipped
        zf.writestr("textures/x.png", b"png")
    spec = PackageSpec("mixed-data", "GPL-2.0-or-later", folder_context=True, drop_prefixes=("resource",))
    res = _build(tmp_path, tree, spec)
    caps = {r["origin"]: r["captions"][0] for r in res.rows}
    assert caps == {
        "usr/share/gcompris-qt/rcc/farm.rcc#gcompris/src/activities/farm/resource/animals/cow.ogg": "animal cow",
        "usr/share/gcompris-qt/rcc/farm.rcc#gcompris/src/activities/farm/resource/door_close.wav": "door close",
        "usr/share/games/ufoai/base/0snd.pk3#sound/footsteps/grass1.wav": "footsteps on grass",
        "usr/share/games/ufoai/base/0snd.pk3#sound/weapons/laser_fire.wav": "weapon laser fire",
    }
    row = next(r for r in res.rows if r["origin"].endswith("laser_fire.wav"))
    assert (tmp_path / "out" / row["audio"]).read_bytes() == _wav(0.2, 900)
    assert not any("escape" in r["audio"] for r in res.rows)


def test_read_zip_bounds_member_size(tmp_path):
    p = tmp_path / "a.pk3"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("big.wav", b"x" * 1000)
        zf.writestr("small.wav", b"y" * 10)
    assert [n for n, _ in read_zip(p, max_member_bytes=100)] == ["small.wav"]
    (tmp_path / "bad.pk3").write_bytes(b"not a zip")
    with pytest.raises(ArchiveError):
        list(read_zip(tmp_path / "bad.pk3"))


# ------------------------------------------------------------------ WavPack
@pytest.mark.skipif(not (shutil.which("wavpack") and shutil.which("wvunpack")), reason="needs Debian's wavpack")
def test_wavpack_files_are_decoded_losslessly(tmp_path):
    tree = tmp_path / "tree/usr/share/games/teeworlds/data/audio"
    tree.mkdir(parents=True)
    src = tmp_path / "wp_hammer_hit-02.wav"
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(4000) * 3000).astype(np.int16)
    sf.write(src, pcm, 16000, subtype="PCM_16")
    subprocess.run(["wavpack", "-q", "-y", str(src), "-o", str(tree / "wp_hammer_hit-02.wv")], check=True)
    (tree / "broken.wv").write_bytes(b"wvpk" + bytes(60))
    res = _build(tmp_path, tmp_path / "tree", PackageSpec("teeworlds-data", "CC-BY-SA-3.0"))
    assert [r["captions"][0] for r in res.rows] == ["weapon hammer hit"]
    out = tmp_path / "out" / res.rows[0]["audio"]
    assert out.suffix == ".wav"
    back, sr = sf.read(out, dtype="int16")
    assert sr == 16000 and np.array_equal(back, pcm)
    assert any(k.startswith("WavPack decoding failed") for k in res.reports[0].skipped)


def test_wavpack_without_the_tool_is_reported(tmp_path, monkeypatch):
    import soundseek.data.debian_archives as arch

    monkeypatch.setattr(arch.shutil, "which", lambda name: None)
    tree = tmp_path / "tree/usr/share/games/teeworlds/data/audio"
    tree.mkdir(parents=True)
    (tree / "wp_gun_fire-01.wv").write_bytes(b"wvpk" + bytes(60))
    res = _build(tmp_path, tmp_path / "tree", PackageSpec("teeworlds-data", "CC-BY-SA-3.0"))
    assert res.rows == []
    assert list(res.reports[0].skipped) == ["format .wv not decoded by libsndfile (install the Debian package wavpack)"]


# ------------------------------------------------------------------ metadata captions and speech
def _hydrogen_tree(root: Path) -> Path:
    kit = root / "usr/share/hydrogen/data/drumkits/TestKit"
    kit.mkdir(parents=True)
    (kit / "86335__zgump__tom-0105.wav").write_bytes(_wav(0.3, 100))
    (kit / "snare_hard.flac").write_bytes(_wav(0.3, 200, fmt="FLAC"))
    (kit / "drumkit.xml").write_text(
        '<?xml version="1.0"?>\n<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">'
        "<name>TestKit</name><instrumentList>"
        "<instrument><id>0</id><name>Kick</name><layer><filename>86335__zgump__tom-0105.wav</filename></layer></instrument>"
        "<instrument><id>1</id><name>Snare Rock</name><layer><filename>snare_hard.flac</filename></layer></instrument>"
        "</instrumentList></drumkit_info>")
    return root


def test_hydrogen_instrument_names_caption_their_samples(tmp_path):
    tree = _hydrogen_tree(tmp_path / "tree")
    labels = hydrogen_labels(tree)
    assert labels["usr/share/hydrogen/data/drumkits/TestKit/86335__zgump__tom-0105.wav"].captions[0] == "kick"
    res = _build(tmp_path, tree, PackageSpec("hydrogen-data", "GPL-2.0-or-later", labels="hydrogen"))
    assert sorted(r["captions"][0] for r in res.rows) == ["kick", "snare rock"]
    assert "a kick hit from a drum kit" in next(r for r in res.rows if r["captions"][0] == "kick")["captions"]


def _qabcs_tree(root: Path) -> Path:
    abcs = root / "usr/share/qabcs/abcs"
    (abcs / "all/noises").mkdir(parents=True)
    (abcs / "all/noises/accordion.ogg").write_bytes(_wav(0.5, 300, fmt="OGG"))
    (abcs / "all/noises/fish.ogg").write_bytes(_wav(0.5, 320, fmt="OGG"))
    (abcs / "en").mkdir()
    (abcs / "en/abc1.json").write_text(json.dumps({"letters": [{"A": {
        "instrument": {"name": "ACCORDION", "noises": "accordion.ogg"},
        "animals": {"name": "ANGELFISH", "noises": "fish.ogg"}}}]}))
    (abcs / "pl/sounds/words").mkdir(parents=True)
    (abcs / "pl/abc1.properties").write_text("language:Polski\n#a\nanimals:a=albatros==albatross=albatross\n")
    (abcs / "pl/sounds/words/albatros.ogg").write_bytes(_wav(0.5, 340, fmt="OGG"))
    (abcs / "pl/sounds/alpha").mkdir()
    (abcs / "pl/sounds/alpha/A.ogg").write_bytes(_wav(0.5, 360, fmt="OGG"))
    return root


def test_qabcs_noises_are_sounds_and_words_are_speech(tmp_path):
    labels = qabcs_labels(_qabcs_tree(tmp_path / "tree"))
    base = "usr/share/qabcs/abcs/"
    assert labels[base + "all/noises/fish.ogg"].captions == ("fish", "angelfish")
    assert not labels[base + "all/noises/fish.ogg"].speech
    word = labels[base + "pl/sounds/words/albatros.ogg"]
    assert word.captions == ("a person saying 'albatros' in Polish",) and word.speech
    assert labels[base + "pl/sounds/alpha/A.ogg"].captions == ("a person saying the letter 'A' in Polish",)


def test_ktuberling_and_klettres_speech_captions(tmp_path):
    tree = tmp_path / "tree"
    snd = tree / "usr/share/ktuberling/sounds"
    (snd / "fr").mkdir(parents=True)
    (snd / "fr.soundtheme").write_text('<language code="fr"><sound name="hat" file="fr/chapeau.ogg"/></language>')
    assert ktuberling_labels(tree)["usr/share/ktuberling/sounds/fr/chapeau.ogg"].captions == (
        "a person saying 'hat' in French",)
    kl = tree / "usr/share/klettres/es"
    kl.mkdir(parents=True)
    (kl / "sounds.xml").write_text('<klettres><language code="es"><alphabet><sound name="B" file="es/alpha/b.ogg"/>'
                                   '</alphabet><syllables><sound name="ba" file="es/syllab/ba.ogg"/></syllables>'
                                   "</language></klettres>")
    labels = klettres_labels(tree)
    assert labels["usr/share/klettres/es/alpha/b.ogg"].captions == ("a person saying the letter 'b' in Spanish",)
    assert labels["usr/share/klettres/es/syllab/ba.ogg"].captions == ("a person saying the syllable 'ba' in Spanish",)


def test_speech_is_capped_at_15_percent_deterministically(tmp_path):
    tree = tmp_path / "tree"
    for i in range(17):
        p = tree / f"usr/share/game/sounds/engine_{chr(97 + i)}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_wav(0.2, 200 + 10 * i))
    for i in range(10):
        p = tree / f"usr/share/game/words/hello_{chr(97 + i)}{chr(97 + i)}x.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(_wav(0.2, 1000 + 10 * i))
    spec = PackageSpec("mixed-data", "GPL-2.0-or-later")
    sp = PackageSpec("speech-data", "GPL-2.0-or-later", include=("*/words/*",), speech=True)
    nonspeech = PackageSpec("mixed-data", "GPL-2.0-or-later", exclude=("*/words/*",))
    assert spec.labels == "path"

    def run():
        return build_corpus(tmp_path / "out", [nonspeech, sp], tmp_path / "cache", fetch=lambda n, c: tree,
                            resolve=lambda n: [n])

    res = run()
    speech = [r for r in res.rows if r.get("tags") == ["speech"]]
    assert len(res.rows) - len(speech) == 17 and len(speech) == 3          # 3 / 20 = 15 %
    assert res.reports[1].kept == 3 and len(res.reports[1].skipped["speech over the 15% cap"]) == 7
    kept_files = {p.name for p in (tmp_path / "out/audio/speech-data").rglob("*.wav")}
    assert kept_files == {Path(r["audio"]).name for r in speech}          # dropped copies are deleted
    first = (tmp_path / "out/manifest.jsonl").read_bytes()
    assert run().manifest_sha256 == res.manifest_sha256
    assert (tmp_path / "out/manifest.jsonl").read_bytes() == first


def test_summary_lists_kept_and_dropped_reasons(tmp_path):
    tree = tmp_path / "tree/usr/share/game/sounds"
    tree.mkdir(parents=True)
    (tree / "door_slam.wav").write_bytes(_wav(0.3))
    (tree / "door_slam_copy.wav").write_bytes(_wav(0.3))
    (tree / "click.wav").write_bytes(_wav(0.01))
    res = _build(tmp_path, tmp_path / "tree", PackageSpec("game-data", "GPL-2.0-or-later"), templates=True)
    text = res.summary()
    assert "clips     1" in text and "1 real non-speech of which 0 cut from long recordings, 0 speech, 0 rendered" in text
    assert "duplicate (same bytes): 1" in text and "duration outside [0.05, 15] s: 1" in text
    assert f"manifest sha256 {res.manifest_sha256}" in text
    assert res.rows[0]["captions"][0] == "door slam" and len(res.rows[0]["captions"]) == 2


# ------------------------------------------------------------------ caption rules
@pytest.mark.parametrize("path, caption", [
    ("sounds/explosionBig_01.wav", "explosion big"),               # camelCase, number stripped
    ("sfx/btn_click_v2.ogg", "button click"),                      # abbreviation, version tag
    ("snd/146731__fins__game-fail.wav", "game fail"),               # Freesound id prefix
    ("weapons/shotgunreload.ogg", "weapon shotgun reload"),         # glued compound + folder context
    ("audio/a3f9c2e1.ogg", None),                                   # hash: no meaning
    ("audio/sound_003.wav", None),                                  # only generic words and numbers
])
def test_caption_rules(path, caption):
    assert caption_from_path(path, folder_context=True) == caption


def test_caption_templates_are_deterministic_and_never_add_content():
    a = caption_variants("knock door", "x/knock_door.wav")
    assert a == caption_variants("knock door", "x/knock_door.wav") and a[0] == "knock door"
    assert a[1] in ("the sound of knock door", "knock door sound effect", "a recording of knock door",
                    "someone knocking door")
    seen = {caption_variants("explosion", f"{i}.wav")[1] for i in range(40)}
    assert seen == {"the sound of explosion", "explosion sound effect", "a recording of explosion"}


# ------------------------------------------------------------------ rendered instruments
def test_instrument_plan_covers_every_gm_program_and_drum_and_is_seeded():
    from soundseek.data.instruments import GM_DRUMS, PROGRAM_NAMES, midi_file, plan

    assert len(PROGRAM_NAMES) == 128 and PROGRAM_NAMES[40] == "violin" and PROGRAM_NAMES[127] == "gunshot"
    clips = plan(0)
    assert plan(0) == clips and plan(1) != clips
    assert {c.captions[0] for c in clips} >= {"a violin playing a slow melody", "a single low cello note",
                                               "a loud hand clap hit", "helicopter"}
    assert sum(c.name.startswith("drum_") for c in clips) == 4 * len(GM_DRUMS)
    for a, b in zip(clips, clips[1:]):
        assert a.start + a.length < b.start                           # clips do not overlap
    assert all(a.start <= t <= a.start + a.length for a in clips for t, _ in a.events if _[0] & 0xF0 != 0xC0)
    mid = midi_file(clips[:3])
    assert mid[:4] == b"MThd" and mid[14:18] == b"MTrk" and mid.endswith(b"\x00\xff\x2f\x00")


SF2 = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("fluidsynth") and SF2.is_file()), reason="needs fluidsynth + fluid-soundfont-gm")
def test_render_instruments_is_rerunnable(tmp_path):
    from soundseek.data.instruments import render

    rows = render(tmp_path, SF2)
    assert len(rows) > 1800 and all((tmp_path / r["audio"]).is_file() for r in rows)
    mtime = (tmp_path / rows[0]["audio"]).stat().st_mtime_ns
    assert render(tmp_path, SF2) == rows
    assert (tmp_path / rows[0]["audio"]).stat().st_mtime_ns == mtime


def test_long_non_music_recordings_are_cut_into_windows(tmp_path):
    tree = tmp_path / "tree/usr/share/game/sounds"
    tree.mkdir(parents=True)
    (tree / "rain.ogg").write_bytes(_wav(25.0, 300, fmt="OGG"))
    (tree / "title_theme.ogg").write_bytes(_wav(25.0, 310, fmt="OGG"))   # music by its name: dropped
    spec = PackageSpec("game-data", "GPL-2.0-or-later")
    res = _build(tmp_path, tmp_path / "tree", spec, segment=10.0, max_segments=6)
    assert [(r["captions"][0], r["origin"].rsplit("@", 1)[1], r["tags"]) for r in res.rows] == [
        ("rain", "0s", ["segment"]), ("rain", "10s", ["segment"])]
    back, sr = sf.read(tmp_path / "out" / res.rows[1]["audio"])
    assert len(back) == 10 * sr
    assert list(res.reports[0].skipped) == ["duration outside [0.05, 15] s (music, or too long to cut)"]
    assert not _build(tmp_path, tmp_path / "tree", spec, segment=0.0).rows      # off: long files dropped


def test_cache_defaults_to_env_or_beside_the_corpus(tmp_path, monkeypatch):
    from soundseek.cli.prepare import CACHE_ENV, _default_cache

    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert _default_cache(str(tmp_path / "debian-sfx" / "train")) == (tmp_path / "debian-sfx" / "cache").resolve()
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "elsewhere"))
    assert _default_cache(str(tmp_path / "x")) == tmp_path / "elsewhere"


def test_cli_refuses_a_package_outside_the_allow_list(tmp_path):
    from soundseek.cli.prepare import main

    with pytest.raises(ValueError, match="'gamine-data' not on the training allow-list"):
        main(["debian", str(tmp_path / "out"), "--packages", "gamine-data", "--cache", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="reserved for independent evaluation"):
        main(["debian", str(tmp_path / "out"), "--packages", "openttd-opensfx", "--cache", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists() and not (tmp_path / "out").exists()
