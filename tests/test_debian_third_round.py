"""Third allow-list round: translation tables, action suffixes, footstep surfaces, coded names,
weapon caps, the reader registry, partial unpacking of a large .deb, .wz archives, and the
module layering (readers never import the builder)."""
from __future__ import annotations

import ast
import io
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from soundseek.data import debian_readers
from soundseek.data.debian import (TRAIN_PACKAGES, PackageSpec, build_corpus, check_training_packages,
                                   select_packages, unpack_selected)
from soundseek.data.debian_captions import TRANSLATIONS, caption_from_path, translate
from soundseek.data.debian_readers import READERS, cap_items, get_reader
from soundseek.data.debian_types import Found, PackageReport

SRC = Path(__file__).resolve().parents[1] / "src" / "soundseek" / "data"


def _wav(seconds: float = 0.3, freq: float = 440.0, sr: int = 8000) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def _build(tmp_path: Path, tree: Path, spec: PackageSpec, **kw):
    return build_corpus(tmp_path / "out", [spec], tmp_path / "cache", fetch=lambda n, c, **o: tree,
                        resolve=lambda n: [n], **kw)


# ------------------------------------------------------------------ translation tables
@pytest.mark.parametrize("path,language,expected", [
    ("sound/sound/Krysa1.wav", "cs", "rat"),
    ("sound/sound/Ptak3.wav", "cs", "bird"),
    ("sound/sound/dvereotevrit2.wav", "cs", "door open"),
    ("sound/sound/Vytah_rozjezd.wav", "cs", "lift starting"),
    ("sound/sound/Pad_krompace.wav", "cs", "falling pick axe"),   # glued compounds are split
    ("sound/sound/racek2.wav", "cs", "seagull"),
    ("sound/sound/stepsnow2.wav", "cs", "footsteps on snow"),
    ("snd_classic/klopf.wav", "de", "knock"),
    ("snd_classic/lachen.wav", "de", "laughing"),
    ("snd_classic/oeffnen.wav", "de", "opening"),
    ("snd_classic/warnton.wav", "de", "warning tone"),
    ("SourceMaterials/BratscheMono.wav", "de", "viola"),
    ("sfx/foule1.wav", "fr", "crowd"),
    ("sfx/argent01.wav", "fr", "money"),
    ("sfx/claxon.wav", "fr", "horn"),
    ("sfx/lplus.wav", "fr", "extra life"),
    ("sfx/mort_b2.wav", "fr", "death"),
])
def test_translation_tables(path, language, expected):
    assert caption_from_path(path, language=language) == expected


def test_translation_only_applies_to_its_language_and_unknown_languages_are_refused():
    assert caption_from_path("sound/Krysa1.wav") == "krysa"            # English rules leave it alone
    assert translate(["krysa", "unknownword"], "cs") == ["rat", "unknownword"]
    assert translate(["krysa"], "en") == ["krysa"]
    with pytest.raises(ValueError, match="no translation table for language 'xx'; valid: en, cs, de, fr"):
        translate(["x"], "xx")
    for table in TRANSLATIONS.values():                # lowercase keys, no empty translations of whole names
        assert all(k == k.lower() and v == v.lower() for k, v in table.items())


# ------------------------------------------------------------------ action suffixes, footsteps
@pytest.mark.parametrize("path,folder,expected", [
    ("audio/actor/fauna/animal/horse_idle3.ogg", True, "animal horse"),
    ("audio/actor/fauna/animal/elephant_death1.ogg", False, "elephant dying"),
    ("audio/actor/fauna/animal/lion_attack2.ogg", False, "lion attack"),
    ("audio/actor/fauna/death/goat_10.ogg", True, "goat dying"),
    ("audio/actor/human/death/male_death_07.ogg", True, "male dying"),
    ("audio/actor/fauna/death/Animal_death_generic_12.ogg", True, "animal dying"),
    ("audio/actor/singlesteps/fs_gravel3.ogg", True, "footsteps on gravel"),
    ("audio/actor/human/movement/Footsteps/Footstep_Grass_Running.ogg", True, "running footsteps on grass"),
    ("audio/actor/human/movement/Footsteps/Foorstep_Sand_Walking.ogg", True, "walking footsteps on sand"),
    ("audio/resource/construction/con_saw_04.ogg", True, "construction saw"),
    ("audio/voice/global/civ_dog_bark.ogg", True, "dog bark"),
    ("castle/sounds/positive-44100Hz-16bit-mono.wav", False, "positive"),
    ("footsteps/grass1.wav", True, "footsteps on grass"),
    ("footsteps/boot1.wav", True, "footstep boot"),        # no surface named: unchanged
])
def test_action_suffixes_and_footstep_surfaces(path, folder, expected):
    drop = ("civ",) if "civ_" in path else ()
    assert caption_from_path(path, drop, folder) == expected


def test_idle_is_only_dropped_as_a_suffix():
    assert caption_from_path("idle.wav") == "idle"
    assert caption_from_path("attack_2.wav") == "attack"


# ------------------------------------------------------------------ coded names and weapon caps
def test_coded_names_are_dropped_not_guessed(tmp_path):
    tree = tmp_path / "tree"
    snd = tree / "usr/share/games/g/sound"
    snd.mkdir(parents=True)
    (snd / "pcv607.wav").write_bytes(_wav(0.2, 300))
    (snd / "mgbar2.wav").write_bytes(_wav(0.2, 400))
    (snd / "rain.wav").write_bytes(_wav(0.2, 500))
    spec = PackageSpec("g-data", "GPL-2.0-or-later", coded=("*/pcv[0-9]*", "*/mgbar*"))
    res = _build(tmp_path, tree, spec)
    assert [r["captions"][0] for r in res.rows] == ["rain"]
    assert sorted(res.reports[0].skipped["coded name (not expanded)"]) == [
        "usr/share/games/g/sound/mgbar2.wav", "usr/share/games/g/sound/pcv607.wav"]


def test_weapon_sounds_are_capped_deterministically(tmp_path):
    tree = tmp_path / "tree"
    snd = tree / "usr/share/games/g/sound"
    for i in range(12):
        (snd / "weapons").mkdir(parents=True, exist_ok=True)
        (snd / "weapons" / f"gun_fire_{i:02d}.wav").write_bytes(_wav(0.2, 300 + 37 * i))
    (snd / "world").mkdir()
    for i in range(5):
        (snd / "world" / f"wind_{i}.wav").write_bytes(_wav(0.2, 2000 + 41 * i))
    spec = PackageSpec("g-data", "GPL-2.0-or-later", cap=4, cap_globs=("*/weapons/*",))
    first = _build(tmp_path, tree, spec)
    guns = [r for r in first.rows if "/weapons/" in r["audio"]]
    assert len(guns) == 4 and sum("/world/" in r["audio"] for r in first.rows) == 5
    assert len(first.reports[0].skipped["over the cap of 4 weapon sounds"]) == 8
    shutil.rmtree(tmp_path / "out")
    again = _build(tmp_path, tree, spec)
    assert [r["audio"] for r in again.rows] == [r["audio"] for r in first.rows]
    assert again.manifest_sha256 == first.manifest_sha256


def test_cap_items_passes_everything_without_a_cap():
    items = [Found(f"a/weapons/{i}.wav", f"{i}.wav", "gun", "MIT") for i in range(5)]
    rep = PackageReport("p")
    assert list(cap_items(items, PackageSpec("p", "MIT"), rep)) == items and not rep.skipped
    kept = list(cap_items(items, PackageSpec("p", "MIT", cap=2, cap_globs=("*/weapons/*",)), rep))
    assert len(kept) == 2 and len(rep.skipped["over the cap of 2 weapon sounds"]) == 3


# ------------------------------------------------------------------ reader registry
def test_readers_come_from_a_registry(tmp_path, monkeypatch):
    assert set(READERS) == {"files", "opensfx", "tuxpaint_stamps"}
    with pytest.raises(ValueError, match="unknown reader 'nope'; valid: files, opensfx, tuxpaint_stamps"):
        get_reader("nope")
    calls = []

    def fake_reader(tree, spec, report, package=""):
        calls.append(package)
        report.found += 1
        yield Found("x/beep.wav", "x/beep.wav", "beep", spec.license, data=_wav(0.2, 700))

    monkeypatch.setitem(READERS, "fake", fake_reader)
    res = _build(tmp_path, tmp_path, PackageSpec("fake-data", "MIT", reader="fake"))
    assert calls == ["fake-data"] and [r["captions"][0] for r in res.rows] == ["beep"]


def test_select_packages_names_valid_readers_on_a_bad_spec(monkeypatch):
    from soundseek.data import debian

    bad = PackageSpec("oxygen-sounds", "MIT", reader="nope")
    monkeypatch.setattr(debian, "TRAIN_PACKAGES", (bad,))
    with pytest.raises(ValueError, match="unknown reader 'nope' for oxygen-sounds; valid: files, opensfx"):
        select_packages(["oxygen-sounds"], evaluation=False)


def test_readers_module_does_not_import_the_builder():
    """The shared types live below both modules: readers -> types, builder -> readers, types."""
    for name, forbidden in (("debian_readers.py", "soundseek.data.debian"), ("debian_types.py", "soundseek.data.debian")):
        tree = ast.parse((SRC / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert forbidden not in imported, name
    types_tree = ast.parse((SRC / "debian_types.py").read_text())
    assert not [n.module for n in ast.walk(types_tree) if isinstance(n, ast.ImportFrom)
                and (n.module or "").startswith("soundseek.data")]


# ------------------------------------------------------------------ archives and partial unpacking
def test_sounds_inside_a_wz_archive_are_read(tmp_path):
    tree = tmp_path / "tree"
    wz = tree / "usr/share/games/warzone2100/base.wz"
    wz.parent.mkdir(parents=True)
    with zipfile.ZipFile(wz, "w") as zf:
        zf.writestr("audio/sfx/building/constrct.ogg", b"not read")
        zf.writestr("audio/sfx/misc/rain.wav", _wav(0.3, 500))
        zf.writestr("audio/tutorial/tut1.wav", _wav(0.3, 600))
    spec = PackageSpec("warzone2100-data", "GPL-2.0-or-later", include=("*/audio/sfx/*",), folder_context=True)
    res = _build(tmp_path, tree, spec)
    assert [r["origin"] for r in res.rows] == ["usr/share/games/warzone2100/base.wz#audio/sfx/misc/rain.wav"]
    assert res.reports[0].skipped["not in the package's sound folders"] == [
        "usr/share/games/warzone2100/base.wz#audio/tutorial/tut1.wav"]


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_unpack_selected_keeps_only_the_used_members(tmp_path):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text("Package: fake-data\nVersion: 1\nArchitecture: all\n"
                                         "Maintainer: x <x@example.org>\nDescription: test\n")
    public = root / "usr/share/games/fake/mods/public"
    public.mkdir(parents=True)
    with zipfile.ZipFile(public / "public.zip", "w") as zf:
        zf.writestr("audio/actor/fauna/animal/cattle_01.ogg", b"moo")
        zf.writestr("audio/music/theme.ogg", b"la")
        zf.writestr("art/textures/big.png", b"\0" * 1000)
        zf.writestr("../escape.ogg", b"bad")
    (root / "usr/share/games/fake/other.bin").write_bytes(b"\0" * 100)
    (root / "usr/share/doc/fake-data").mkdir(parents=True)
    (root / "usr/share/doc/fake-data/copyright").write_text("Files: *\nLicense: GPL-2+\n")
    deb = tmp_path / "fake-data_1_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    dest = tmp_path / "tree"
    written = unpack_selected(deb, dest, ("usr/share/games/fake/mods/public/public.zip",
                                          "usr/share/doc/fake-data/copyright"), ("audio/actor/*",))
    assert written == ["usr/share/doc/fake-data/copyright",
                       "usr/share/games/fake/mods/public/public/audio/actor/fauna/animal/cattle_01.ogg"]
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == written                      # the zip itself, music, textures and other files are not kept
    assert not (tmp_path / "escape.ogg").exists()


# ------------------------------------------------------------------ allow-list
THIRD_ROUND = """0ad-data nexuiz-data berusky2-data openarena-data warzone2100-data hyperrogue-music simutrans-pak64
pekka-kana-2-data ukui-media mirrormagic-data castle-game-engine-doc netpanzer-data freedink-data plee-the-bear-data
heroes-sound-effects workrave-data afterstep-data unknown-horizons freecol bambam dopewars-data csoundqt-examples
hydrogen-drumkits-effects""".split()


def test_third_round_packages_are_allowed_and_real_sfx_dev_sources_are_not():
    names = [s.name for s in TRAIN_PACKAGES]
    assert set(THIRD_ROUND) <= set(names)
    check_training_packages(names)
    # sound-theme-freedesktop is a source of real-sfx-dev: training on it would break that evaluation
    assert "sound-theme-freedesktop" not in names
    with pytest.raises(ValueError, match="real-sfx-dev source"):
        select_packages(["sound-theme-freedesktop"], evaluation=False)
    for reserved in ("openttd-opensfx", "tuxpaint-stamps-default", "tuxpaint-plugins-default", "gamine-data"):
        with pytest.raises(ValueError):
            select_packages([reserved], evaluation=False)


def test_guitar_strum_chords_are_named_from_the_file_name(tmp_path):
    from soundseek.data.debian_labels import guitar_strum_labels

    kit = tmp_path / "usr/share/hydrogen/data/drumkits/belofilms_GuitarStrums"
    kit.mkdir(parents=True)
    for name in ("Amajor_00.flac", "Csharp minor_DOWN_00.flac", "Eminor7b5_UP_03.flac", "Asharp minro7b5_01.flac",
                 "readme.flac"):
        (kit / name).write_bytes(b"x")
    labels = {k.rsplit("/", 1)[-1]: v.captions for k, v in guitar_strum_labels(tmp_path).items()}
    assert labels == {
        "Amajor_00.flac": ("guitar strum A major chord", "an acoustic guitar strumming an A major chord"),
        "Csharp minor_DOWN_00.flac": ("guitar downward strum C sharp minor chord",
                                      "an acoustic guitar strumming a C sharp minor chord"),
        "Eminor7b5_UP_03.flac": ("guitar upward strum E minor seven flat five chord",
                                 "an acoustic guitar strumming an E minor seven flat five chord"),
        "Asharp minro7b5_01.flac": ("guitar strum A sharp minor seven flat five chord",
                                    "an acoustic guitar strumming an A sharp minor seven flat five chord"),
    }
