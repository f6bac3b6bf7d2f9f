"""Real captioned sound-effect corpora built from Debian packages (docs/data-prep.md).

``soundseek prepare debian OUT_DIR`` downloads game / desktop-theme packages with
``apt-get download``, unpacks them with ``dpkg -x`` into a cache, finds their sound effects,
derives a caption from each file name (:mod:`soundseek.data.debian_captions`) and writes::

    OUT_DIR/
    ├── manifest.jsonl        # {"audio", "captions", "source", "license", "duration", "origin"}
    └── audio/<package>/...   # files copied as shipped (not transcoded)

The manifest is the generic JSONL format of METHODS.md §1 (``load_corpus(path, "manifest")``).

Independence rule: the packages in :data:`RESERVED_EVAL` (``openttd-opensfx``,
``tuxpaint-stamps-*``) only ever go into the evaluation corpus (``--eval``), and the
packages of real-sfx-dev (:data:`REAL_SFX_DEV`) never go into training;
:func:`check_training_packages` enforces both, and clips whose bytes equal a clip of an
``avoid`` manifest are dropped.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

from soundseek.data.debian_captions import caption_variants
from soundseek.data.debian_readers import READERS, cap_items, get_reader
from soundseek.data.debian_types import AUDIO_EXTENSIONS, UNSUPPORTED_AUDIO, Found, PackageReport, PackageSpec
from soundseek.data.debian_types import matches as _matches
from soundseek.fileio import atomic_write_data

__all__ = ["AUDIO_EXTENSIONS", "UNSUPPORTED_AUDIO", "Found", "PackageReport", "PackageSpec", "READERS",
           "TRAIN_PACKAGES", "EVAL_PACKAGES", "build_corpus", "select_packages", "fetch_package"]

RESERVED_EVAL: tuple[str, ...] = ("openttd-opensfx", "tuxpaint-stamps-*")
"""Packages kept for independent evaluation only (never training)."""
REAL_SFX_DEV: tuple[str, ...] = ("sonic-pi-samples", "wesnoth*", "sound-theme-freedesktop")
"""Packages that real-sfx-dev was built from (never training, so its evaluation stays independent)."""

_VOICE = ("*/voices/*", "*/voice/*", "*/speech/*")
TRAIN_PACKAGES: tuple[PackageSpec, ...] = (
    # desktop / chat sound themes
    PackageSpec("oxygen-sounds", "LGPL-3.0-or-later", drop_prefixes=("oxygen",)),
    PackageSpec("yaru-theme-sound", "CC-BY-SA-4.0"),
    PackageSpec("deepin-sound-theme", "GPL-3.0-or-later", drop_prefixes=("x", "deepin")),
    PackageSpec("psi-plus-sounds", "GPL-2.0-or-later"),
    PackageSpec("eiskaltdcpp-sounds", "GPL-2.0-or-later"),
    # games
    PackageSpec("7kaa-data", "GPL-2.0-or-later"),
    PackageSpec("a7xpg-data", "BSD-2-Clause"),
    PackageSpec("abe-data", "GPL-2.0-or-later"),
    PackageSpec("aisleriot", "GPL-3.0-or-later"),
    PackageSpec("alienblaster-data", "GPL-2.0-or-later"),
    PackageSpec("ardentryst", "GPL-3.0-or-later", exclude=("*/VOI_*",), folder_context=True),
    PackageSpec("barrage", "GPL-2.0-or-later"),
    PackageSpec("brainparty-data", "GPL-3.0-or-later"),
    PackageSpec("btanks-data", "GPL-2.0-or-later", folder_context=True),
    PackageSpec("bzflag-data", "LGPL-2.1 OR MPL-2.0"),
    PackageSpec("chromium-bsu-data", "Artistic-1.0-cl8"),
    PackageSpec("cube2-data", "CC-BY-3.0"),
    PackageSpec("endless-sky-data", "CC-BY-SA-4.0"),
    PackageSpec("enigma-data", "GPL-2.0-or-later"),
    PackageSpec("extremetuxracer-data", "GPL-2.0-or-later"),
    PackageSpec("flare-game", "CC-BY-SA-3.0", exclude=("*/npcs/*",), folder_context=True),
    PackageSpec("freeciv-data", "GPL-2.0-or-later"),
    PackageSpec("freedroidrpg-data", "GPL-2.0-or-later",
                exclude=("*/storyline/*", "*/voice_samples/*", "*/tux_ingame_comments/*"), folder_context=True),
    PackageSpec("frozen-bubble-data", "GPL-2.0-only"),
    PackageSpec("gnome-robots", "GPL-3.0-or-later"),
    PackageSpec("gnubg-data", "GPL-3.0-or-later"),
    PackageSpec("granatier", "GPL-2.0-or-later"),
    PackageSpec("gunroar-data", "BSD-2-Clause"),
    PackageSpec("hedgewars-data", "GPL-2.0-only", exclude=_VOICE),
    PackageSpec("kapman", "GPL-2.0-or-later"),
    PackageSpec("kblocks", "GPL-2.0-or-later"),
    PackageSpec("kbounce", "LGPL-2.0-or-later"),
    PackageSpec("kgoldrunner", "GPL-2.0-or-later"),
    PackageSpec("kpat", "GPL-2.0-or-later"),
    PackageSpec("lbreakout2-data", "GPL-2.0-or-later"),
    PackageSpec("lincity-ng-data", "GPL-2.0-or-later"),
    PackageSpec("lugaru-data", "CC-BY-SA-3.0"),
    PackageSpec("marsshooter-data", "CC-BY-SA-3.0", exclude=("*/announcer/*",)),
    PackageSpec("megaglest-data", "CC-BY-SA-3.0",  # unit voice lines (ack/select) are speech: left out
                exclude=("*_ack[0-9]*", "*_select[0-9]*", "*_sel[0-9]*", "*/ack[0-9]*", "*/select[0-9]*")),
    PackageSpec("minetest-data", "CC-BY-SA-3.0", drop_prefixes=("default", "soundstuff")),
    PackageSpec("moon-lander-data", "BSD-2-Clause"),
    PackageSpec("mu-cade-data", "BSD-2-Clause"),
    PackageSpec("noiz2sa-data", "BSD-2-Clause"),
    PackageSpec("open-invaders-data", "GPL-2.0-or-later"),
    PackageSpec("parsec47-data", "BSD-2-Clause"),
    PackageSpec("pathological", "GPL-2.0-or-later"),
    PackageSpec("pingus-data", "GPL-2.0-or-later"),
    PackageSpec("pinball-data", "GPL-2.0-only"),
    PackageSpec("pokerth-data", "GPL-2.0-or-later"),
    PackageSpec("powermanga-data", "GPL-3.0-or-later"),
    PackageSpec("pysiogame", "GPL-3.0-or-later"),
    PackageSpec("quadrapassel", "GPL-2.0-or-later"),
    PackageSpec("rrootage-data", "BSD-2-Clause"),
    PackageSpec("scorched3d-data", "GPL-2.0-or-later"),
    PackageSpec("solarwolf", "LGPL-2.1-only"),
    PackageSpec("spacezero", "GPL-3.0-or-later"),
    PackageSpec("starfighter-data", "GPL-2.0-or-later"),
    PackageSpec("supertux-data", "GPL-2.0-or-later", exclude=("*/speech/*",)),
    PackageSpec("titanion-data", "BSD-2-Clause"),
    PackageSpec("torus-trooper-data", "BSD-2-Clause"),
    PackageSpec("tumiki-fighters-data", "BSD-2-Clause"),
    PackageSpec("tuxfootball", "GPL-2.0-or-later"),
    PackageSpec("tuxmath-data", "GPL-3.0-or-later"),
    PackageSpec("tuxpaint-data", "GPL-2.0-or-later"),
    PackageSpec("tuxtype-data", "GPL-2.0-only"),
    PackageSpec("warmux-data", "GPL-2.0-or-later", exclude=("*/voices/*",), folder_context=True),
    # everyday sounds, instruments, speech
    PackageSpec("qabcs-data", "GPL-3.0-or-later", labels="qabcs",
                include=("*/abcs/all/noises/*", "*/sounds/words/*", "*/sounds/alpha/*")),
    PackageSpec("hydrogen-drumkits", "GPL-2.0-or-later", labels="hydrogen"),
    PackageSpec("hydrogen-data", "GPL-2.0-or-later", labels="hydrogen"),
    PackageSpec("ufoai-sound", "GPL-2.0-or-later", folder_context=True, exclude=("*/voices/*", "*/music/*")),
    PackageSpec("lmms-common", "GPL-2.0-or-later", folder_context=True,
                exclude=("*/waveforms/*", "*/shapes/*", "*/themes/*", "*/zynaddsubfx/*")),
    PackageSpec("gcompris-qt-data", "GPL-3.0-or-later", folder_context=True, drop_prefixes=("resource",),
                exclude=("*/voices*", "*/explore_world_music/*", "*/intro.ogg", "*/chronos/*")),
    PackageSpec("emacspeak", "GPL-2.0-or-later", exclude=("*/servers/*", "*/etc/*")),
    PackageSpec("triplea", "GPL-3.0-or-later", folder_context=True, exclude=("*anthem*", "*/music/*")),
    PackageSpec("boswars-data", "GPL-2.0-or-later", folder_context=True, exclude=("*/campaigns/*", "*/voice/*")),
    PackageSpec("overgod-data", "GPL-2.0-or-later"),
    PackageSpec("mazeofgalious-data", "GPL"),
    PackageSpec("wordwarvi-sound", "GPL-2.0-or-later"),
    PackageSpec("micropolis-data", "GPL-3.0-or-later"),
    PackageSpec("searchandrescue-data", "GPL"),
    PackageSpec("crossfire-client", "GPL-2.0-or-later"),
    PackageSpec("krank", "public-domain", folder_context=True),
    PackageSpec("etw-data", "GPL-2.0-or-later", folder_context=True, exclude=("*/intro/*",)),
    PackageSpec("neverball-common", "GPL-2.0-or-later"),
    PackageSpec("caveexpress-data", "GPL-3.0-or-later"),
    PackageSpec("teeworlds-data", "CC-BY-SA-3.0"),
    PackageSpec("bucklespring-data", "GPL-2.0-or-later", labels="bucklespring"),
    PackageSpec("widelands-data", "GPL-2.0-or-later", folder_context=True),
    PackageSpec("flightgear-data-base", "GPL-2.0-or-later", folder_context=True,  # spoken cockpit callouts left out
                exclude=("*/ATC/*", "*/Voice*", "*/mk-viii/*", "*/tcas/*")),
    PackageSpec("redeclipse-data", "CC-BY-SA-3.0", folder_context=True,
                exclude=("*/voice/*", "*/announcer/*")),
    PackageSpec("supertuxkart-data", "CC-BY-SA-3.0", exclude=("*/tracks/*",)),
    PackageSpec("torcs-data", "GPL-2.0-or-later"),
    # everyday sounds, third round: animals, footsteps, tools, weather, vehicles, people
    PackageSpec("0ad-data", "CC-BY-SA-3.0", folder_context=True, drop_prefixes=("civ",),
                unpack=("usr/share/games/0ad/mods/public/public.zip",),
                unpack_members=("audio/actor/*", "audio/ambient/*", "audio/attack/*", "audio/resource/*",
                                "audio/interface/ui/*", "audio/voice/global/*"),
                exclude=("*_select*", "*_order*", "*_trained*", "*expire*"),
                coded=("*/fire/c_*", "*/fire/sp_*", "*/fire/sz*", "*/mstep*", "*/hstep*", "*/smove*"),
                cap=60, cap_globs=("*/attack/weapon/*", "*/attack/impact/*", "*/attack/siege/*")),
    PackageSpec("nexuiz-data", "GPL-2.0-or-later", folder_context=True, include=("*/data/sound/*",),
                drop_prefixes=("toru", "torus"),
                exclude=("*/sound/announcer/*", "*/sound/tutorial/*", "*/sound/ctf/*", "*/sound/kh/*",
                         "*/sound/domination/*", "*/coms/*", "*radiomessage*", "*/misc/talk*", "*/misc/null*",
                         *(f"*/torus/{w}*" for w in ("attack", "coverme", "flagseen", "hooah", "incoming", "letsgo",
                                                     "needhelp", "taunt", "teamshoot", "waypoint"))),
                coded=("*/hagexp*", "*/ric[0-9]*", "*/tink*", "*/minstanex*", "*/nex[fiw]*", "*/crylink*",
                       "*/hagar*", "*/ambient_07*", "*/ons_*", "*/porto/*", "*/nexball/*", "*/medplat*", "*/armor[0-9]*",
                       "*tuba_note*", "*/invshot*", "*/typehit*", "*creasevalue*", "*itemrespawn*", "*cyberparcour*",
                       "*/gib*", "*/spawn.*", "*damageblockedbyshield*", "*/hookbomb*", "*rocket_det*", "*rocket_mode*")),
    PackageSpec("berusky2-data", "GPL-2.0-or-later", language="cs", exclude=("*/silence*",),
                coded=("*/prc*", "*/voc*", "*/wstep*", "*/Drak*", "*/Dest*", "*/Kap*", "*/telep*", "*/teloff*",
                       "*/telon*", "*/juch*", "*/hopla*")),
    PackageSpec("openarena-data", "GPL-2.0-or-later", folder_context=True, include=("*/sound/*",), drop_prefixes=("sarge",),
                exclude=("*/sound/voices/*", "*/sound/feedback/*", "*/sound/teamplay/*", "*/sound/player/announcer/*",
                         "*/taunt*", "*/misc/silence*", "*/player/talk*"),
                coded=("*/1shot_greg*", "*/cf_*", "*/curnt*", "*/tim_*", "*_pkup*", "*/[lmns]_health*", "*/gib*",
                       "*/gurp*", "*/watr_*", "*/nightmare*", "*/x_*", "*/drone6*", "*/ambience03*", "*/proxmine/*",
                       "*/bfg/*", "*/vulcan/*", "*/fry.wav", "*/monitor_*", "*/dr_*", "*/pt_*", "*grenlf*", "*hgrenb*",
                       "*kam_*", "*buletby*", "*machgf*", "*/ric*", "*/fst*", "*wnal*", "*hyprbf*", "*lasfly*",
                       "*plasmx*", "*railgf*", "*rg_hum*", "*rocklf*", "*rocklx*", "*sshotf*", "*butn*", "*telein*",
                       "*teleout*", "*painwind*", "*ammoregen*", "*kamikaze*", "*quaddamage*", "*wearoff*"),
                cap=40, cap_globs=("*/sound/weapons/*",)),
    PackageSpec("warzone2100-data", "GPL-2.0-or-later", folder_context=True,
                include=("*/audio/sfx/*",),  # the other folders hold speech (briefings, unit replies)
                exclude=("*/silence*", "*/help*"),
                coded=tuple(f"*/{w}*" for w in ("ecmtower", "freroar", "powerspk", "atnkexpl", "bldfall", "lsrexpl",
                                                "mpodexpl", "nxsexpld", "richet", "gmeshtdn", "hov", "tflight", "thover",
                                                "tland", "tstart", "vtol", "bldloop", "bldstart", "plslsr", "rapdcan",
                                                "rotlsr", "mgbar", "mgheavy", "gaussgun", "flmthrow", "tread", "con-",
                                                "cyber")),
                cap=15, cap_globs=("*/sfx/weapons/*",)),
    PackageSpec("hyperrogue-music", "GPL-2.0-or-later", include=("*/hyperrogue/sounds/*",),
                exclude=("*/speak-*",), coded=("*/dzia-*", "*yendor*", "*/orb-mind*", "*/orb-ranged*")),
    PackageSpec("simutrans-pak64", "Artistic-1.0"),
    PackageSpec("pekka-kana-2-data", "BSD-2-Clause",
                coded=("*_ko.wav", "*_dm.wav", "*_at.wav", "*_k2.wav", "*/p_*", "*/ko1.wav", "*/robo_*",
                       "*doodle*", "*/counter*", "*/explot*", "*/app_bite*")),
    PackageSpec("ukui-media", "GPL-2.0-or-later", coded=("*/gudou*", "*/kaca*", "*/ttlou*")),
    PackageSpec("mirrormagic-data", "GPL-2.0-or-later", language="de",
                coded=("*/infotron*", "*/kink*", "*/knurk*", "*/quirk*", "*/zonk*", "*/base.wav", "*/bug.wav",
                       "*/klumpf*", "*/hui.wav"), exclude=("*/halloffame*",)),
    PackageSpec("castle-game-engine-doc", "LGPL-2.1-or-later", include=("*/examples/*",),
                exclude=("*/music/*", "*/tone.wav", "*stereo_test*", "*temple*", "*beating_that_thing*",
                         "*misc_sound*", "*/original_versions/*", "*-22000Hz-*", "*dark_fallout*", "*flaunch*")),
    PackageSpec("netpanzer-data", "GPL-2.0-or-later",  # unit replies ("yes sir", "moving out") are speech
                exclude=("*selected_*", "*/move_*", "*/target_*", "*yessir*", "*ohgod*"),
                coded=("*/h[otv]-fire*", "*/[lm][tu]-fire*", "*/hev*", "*/unitsound*")),
    PackageSpec("freedink-data", "GPL-3.0-or-later", exclude=("*/intro*",),
                coded=("*/bhit*", "*/high2*", "*/denube*", "*/lovin*", "*/sel1*", "*/nono*", "*/wscream*")),
    PackageSpec("plee-the-bear-data", "CC-BY-SA-2.0", folder_context=True, drop_prefixes=("plee",),
                exclude=("*/scale/*", "*/sequencer/*", "*/dummy*"), coded=("*corrupting*",)),
    PackageSpec("heroes-sound-effects", "GPL-2.0-or-later", language="fr",
                exclude=("*/ho_yeh*", "*/oh.wav", "*/no.wav", "*/menu0*", "*/go.wav"), coded=("*/dream*",)),
    PackageSpec("workrave-data", "GPL-3.0-or-later"),
    PackageSpec("afterstep-data", "GPL-2.0-or-later", coded=("*/fwop*", "*/huh*")),
    PackageSpec("unknown-horizons", "GPL-2.0-or-later", exclude=_VOICE),
    PackageSpec("freecol", "GPL-2.0-or-later", folder_context=True,
                exclude=("*/anthem/*", "*/intro/*", "*/intro.ogg", "*/meet/*", "*/video/*")),
    PackageSpec("bambam", "GPL-3.0-or-later",
                exclude=("*/areyousure*", "*/youcannot*"), coded=("*_lo.wav", "*/tuxok*")),
    PackageSpec("dopewars-data", "GPL-2.0-or-later", exclude=("*/losebitch*", "*/bye.wav")),
    PackageSpec("csoundqt-examples", "LGPL-2.1-or-later", include=("*/SourceMaterials/*",),
                language="de",  # "Bratsche" (viola); the other names are English
                exclude=("*/AndItsAll*", "*/fox.wav", "*/ahh.aiff", "*/eee.aiff", "*/ooo.aiff", "*/Stairwell*",
                         "*/imp*", "*/sample.wav", "*/loop.wav", "*/wave.wav", "*/twopeaks*", "*Mono.wav",
                         "*/dish[LR].wav"),
                coded=("*/MFEM*", "*/fwavblnk*", "*/gbuzz*", "*/marmstk*", "*/Songpan*", "*/ClassGuit.*", "*/mandpluk*")),
    PackageSpec("hydrogen-drumkits-effects", "GPL-2.0-or-later", labels="guitar_strums"),
    # speech only (captioned as speech, capped)
    PackageSpec("ktuberling-data", "GPL-2.0-or-later", labels="ktuberling", speech=True),
    PackageSpec("klettres-data", "GPL-2.0-or-later", labels="klettres", speech=True),
    PackageSpec("asterisk-core-sounds-en-wav", "CC-BY-SA-3.0", labels="asterisk", speech=True,
                exclude=("*/silence/*",)),
)
"""The training allow-list: the only packages ever read for training (checked by hand: sound
files with meaningful English names, or metadata naming them)."""
INSTRUMENT_PACKAGE = "fluid-soundfont-gm"
"""Sound font whose General MIDI instruments are rendered into the training corpus (:mod:`soundseek.data.instruments`)."""
SPEECH_SHARE = 0.15
"""At most this share of a training corpus's clips is speech."""

EVAL_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("openttd-opensfx", "CC-BY-SA-3.0", reader="opensfx"),
    PackageSpec("tuxpaint-stamps-*", "GPL-2.0-only", reader="tuxpaint_stamps"),
)
"""The independent evaluation packages (:data:`RESERVED_EVAL`)."""


def check_training_packages(names: Iterable[str]) -> None:
    """Raise ValueError if a training package is reserved for evaluation or belongs to real-sfx-dev."""
    for name in names:
        hit = _matches(name, RESERVED_EVAL)
        if hit:
            raise ValueError(f"package {name!r} is reserved for independent evaluation ({hit}); "
                             "use it only with --eval")
        hit = _matches(name, REAL_SFX_DEV)
        if hit:
            raise ValueError(f"package {name!r} is a real-sfx-dev source ({hit}); training on it "
                             "would break the independence of real-sfx-dev evaluation")


def check_eval_packages(names: Iterable[str]) -> None:
    """Raise ValueError if an evaluation package is not one of :data:`RESERVED_EVAL`."""
    for name in names:
        if not _matches(name, RESERVED_EVAL):
            raise ValueError(f"evaluation package {name!r} is not reserved; valid: {', '.join(RESERVED_EVAL)}")


def select_packages(names: Iterable[str] | None, evaluation: bool) -> list[PackageSpec]:
    """Specs for ``names`` (None = all of the chosen list); unknown names get the default reader."""
    table = EVAL_PACKAGES if evaluation else TRAIN_PACKAGES
    if names is None:
        specs = list(table)
    else:
        names = list(names)
        (check_eval_packages if evaluation else check_training_packages)(names)
        by_name = {s.name: s for s in table}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"package(s) {', '.join(map(repr, unknown))} not on the "
                             f"{'evaluation' if evaluation else 'training'} allow-list; every other Debian "
                             "package is reserved for independent evaluation (see --list)")
        specs = [by_name[n] for n in names]
    (check_eval_packages if evaluation else check_training_packages)(s.name for s in specs)
    for s in specs:
        if s.reader not in READERS:
            raise ValueError(f"unknown reader {s.reader!r} for {s.name}; valid: {', '.join(sorted(READERS))}")
    return specs


# ---------------------------------------------------------------- download and unpack (cached)
def resolve_names(pattern: str, run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> list[str]:
    """Expand a glob package name with ``apt-cache pkgnames``; plain names are returned as is."""
    if not any(c in pattern for c in "*?["):
        return [pattern]
    prefix = pattern.split("*")[0].split("?")[0].split("[")[0]
    out = run(["apt-cache", "pkgnames", prefix], capture_output=True, text=True, check=True).stdout
    names = sorted(n for n in out.split() if fnmatch.fnmatchcase(n, pattern))
    if not names:
        raise FileNotFoundError(f"no Debian package matches {pattern!r} (run `apt-get update`?)")
    return names


def fetch_package(name: str, cache: Path,
                  run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                  unpack: tuple[str, ...] = (), unpack_members: tuple[str, ...] = ()) -> Path:
    """Download (``apt-get download``) and unpack (``dpkg -x``) a package; both steps are cached.

    Args:
        unpack: if set, only the files of the ``.deb`` matching these globs (and the package's
            copyright file) are unpacked, streamed from ``dpkg-deb --fsys-tarfile``.
        unpack_members: with ``unpack``: each unpacked zip archive is replaced by a folder of
            its members matching these globs (``public.zip`` -> ``public/audio/...``).

    Returns:
        ``cache/trees/<name>``, the unpacked file tree.
    """
    tree = cache / "trees" / name
    if (tree / ".complete").is_file():
        return tree
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
    if not found:
        proc = run(["apt-get", "download", name], cwd=debs, capture_output=True, text=True)
        found = sorted(debs.glob(f"{name}_*.deb"), key=lambda p: p.stat().st_mtime)
        if proc.returncode != 0 or not found:
            raise FileNotFoundError(f"apt-get download {name} failed: {proc.stderr.strip()[-300:]}")
    tmp = tree.with_name(tree.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    if unpack:
        unpack_selected(found[-1], tmp, (*unpack, f"usr/share/doc/{name}/copyright"), unpack_members)
    else:
        run(["dpkg", "-x", str(found[-1]), str(tmp)], check=True, capture_output=True)
    (tmp / ".complete").write_text(found[-1].name + "\n")
    shutil.rmtree(tree, ignore_errors=True)
    os.replace(tmp, tree)
    return tree


def unpack_selected(deb: Path, dest: Path, globs: tuple[str, ...], members: tuple[str, ...] = ()) -> list[str]:
    """Unpack the regular files of ``deb`` whose path (``usr/share/...``) matches ``globs`` into
    ``dest``, streaming its data archive (nothing else is written); zip archives among them are
    replaced by a folder of their members matching ``members`` (when given). Member paths that
    are absolute or contain ``..`` are skipped. Returns the written paths, relative to ``dest``."""
    from soundseek.data.debian_archives import MAX_MEMBER_BYTES

    written: list[str] = []
    proc = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    try:
        with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
            for info in tar:
                rel = info.name.removeprefix("./")
                if not info.isfile() or rel.startswith("/") or ".." in rel.split("/") or not _matches(rel, globs):
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(info)
                assert src is not None
                with open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                if members and zipfile.is_zipfile(target):
                    folder = target.with_suffix("")
                    with zipfile.ZipFile(target) as zf:
                        for zi in sorted(zf.infolist(), key=lambda z: z.filename):
                            member = zi.filename
                            if (zi.is_dir() or member.startswith("/") or ".." in member.split("/")
                                    or zi.file_size > MAX_MEMBER_BYTES or not _matches(member, members)):
                                continue
                            out_path = folder / member
                            out_path.parent.mkdir(parents=True, exist_ok=True)
                            with zf.open(zi) as body, open(out_path, "wb") as out:
                                shutil.copyfileobj(body, out, 1 << 20)
                            written.append(out_path.relative_to(dest).as_posix())
                    target.unlink()
                else:
                    written.append(rel)
    finally:
        proc.stdout.close()
        if proc.wait() != 0:
            raise subprocess.CalledProcessError(proc.returncode, ["dpkg-deb", "--fsys-tarfile", str(deb)])
    return sorted(written)


def sha1_bytes(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


# ---------------------------------------------------------------- build
@dataclass
class BuildResult:
    """Rows written and per-package reports of :func:`build_corpus`."""

    rows: list[dict]
    reports: list[PackageReport]
    manifest_sha256: str = ""

    def summary(self) -> str:
        """Per-package lines, then totals: found / kept / dropped by reason, speech, rendered."""
        total = sum(r["duration"] for r in self.rows)
        lines = [r.line() for r in self.reports]
        reasons: dict[str, int] = {}
        for r in self.reports:
            for k, v in r.skipped.items():
                reasons[k] = reasons.get(k, 0) + len(v)
        speech = sum("speech" in r.get("tags", ()) for r in self.rows)
        rendered = sum("rendered" in r.get("tags", ()) for r in self.rows)
        segments = sum("segment" in r.get("tags", ()) for r in self.rows)
        lines.append(f"{'total':28s} found {sum(r.found for r in self.reports):5d}  clips {len(self.rows):5d}"
                     f"  ({total / 60:.1f} min of audio; {len(self.rows) - speech - rendered} real non-speech"
                     f" of which {segments} cut from long recordings, {speech} speech, {rendered} rendered)")
        lines.append("dropped: " + (", ".join(f"{k}: {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
                                    or "nothing"))
        if self.manifest_sha256:
            lines.append(f"manifest sha256 {self.manifest_sha256}")
        return "\n".join(lines)


def _probe(found: Found) -> tuple[float | None, str | None]:
    """(duration in s, None) or (None, reason) using soundfile (libsndfile)."""
    import io

    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(found.data) if found.data is not None else str(found.path))
    except Exception as e:  # noqa: BLE001 - libsndfile raises several types for bad files
        return None, f"unreadable ({type(e).__name__})"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "empty"
    return info.frames / info.samplerate, None


def manifest_hashes(paths: Iterable[Path]) -> set[str]:
    """sha1 of every audio file listed in the given JSONL manifests."""
    out: set[str] = set()
    for m in paths:
        m = Path(m)
        m = m / "manifest.jsonl" if m.is_dir() else m
        for line in m.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                audio = Path(json.loads(line)["audio"])
                audio = audio if audio.is_absolute() else m.parent / audio
                if audio.is_file():
                    out.add(sha1_bytes(audio.read_bytes()))
    return out


def write_manifest(rows: list[dict], path: Path) -> None:
    """Write JSONL rows atomically (temp file + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    atomic_write_data(path, text.encode("utf-8"))


_MUSIC_WORDS = frozenset({"music", "musics", "tune", "tunes", "theme", "intro", "title", "song", "songs", "menu",
                          "highscore", "jingle", "soundtrack", "anthem", "credits", "outro", "mix", "monomix"})
SILENT_PEAK = 0.003


def _segments(item: Found, caption_words: set[str], length: float, max_segments: int,
              max_source: float) -> list[tuple[float, bytes]] | None:
    """Up to ``max_segments`` non-overlapping ``length``-second windows (FLAC) of a long recording
    that is not music (by its path and caption words), silent windows left out; None if not cut."""
    import io

    import numpy as np
    import soundfile as sf

    words = caption_words | {w.lower() for w in re.split(r"[^A-Za-z]+", item.origin) if w}
    if words & _MUSIC_WORDS:
        return None
    src = io.BytesIO(item.data) if item.data is not None else str(item.path)
    info = sf.info(src)
    if info.duration > max_source:
        return None
    if isinstance(src, io.BytesIO):
        src.seek(0)
    audio, sr = sf.read(src, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    out = []
    step = int(length * sr)
    for k in range(min(max_segments, len(mono) // step)):
        seg = mono[k * step: (k + 1) * step]
        if np.abs(seg).max() < SILENT_PEAK:
            continue
        buf = io.BytesIO()
        sf.write(buf, np.clip(seg, -1, 1), sr, format="FLAC", subtype="PCM_16")
        out.append((k * length, buf.getvalue()))
    return out


def _cap_speech(rows: list[dict], share: float, reports: dict[str, PackageReport], out_dir: Path) -> list[dict]:
    """Keep at most ``share`` of the clips as speech: speech rows beyond the cap are dropped (and
    their copies deleted), chosen by a hash of their path (deterministic, spread over packages
    and languages)."""
    speech = [r for r in rows if "speech" in r.get("tags", ())]
    other = len(rows) - len(speech)
    allowed = int(share * other / (1 - share)) if share < 1 else len(speech)
    if len(speech) <= allowed:
        return rows
    order = sorted(speech, key=lambda r: hashlib.sha1(r["audio"].encode()).hexdigest())
    drop = {id(r) for r in order[allowed:]}
    for r in order[allowed:]:
        rep = reports.get(r["source"].removesuffix(" (Debian)"))
        if rep is not None:
            rep.kept -= 1
            rep.skip(f"speech over the {share:.0%} cap", r["origin"])
        (out_dir / r["audio"]).unlink(missing_ok=True)
    return [r for r in rows if id(r) not in drop]


def _unpack_options(spec: PackageSpec) -> dict:
    """Keyword arguments of :func:`fetch_package` for a spec that unpacks only part of its .deb."""
    return {"unpack": spec.unpack, "unpack_members": spec.unpack_members} if spec.unpack else {}


def _admit(items: Iterable[Found], report: PackageReport, seen: set[str], avoided: set[str],
           min_duration: float, max_duration: float, long_ok: bool) -> Iterator[tuple[Found, float, bytes]]:
    """Phase 2 of a build: ``(item, duration, bytes)`` of the readable items within the duration
    bounds (or long non-speech recordings when ``long_ok``) whose bytes are new (``seen`` is
    updated) and not in an avoided corpus; every other item is reported with its reason."""
    for item in items:
        duration, why = _probe(item)
        if duration is None:
            report.skip(why or "unreadable", item.origin)
            continue
        long = duration > max_duration and long_ok and not item.speech
        if not min_duration <= duration <= max_duration and not long:
            report.skip(f"duration outside [{min_duration:g}, {max_duration:g}] s", item.origin)
            continue
        data = item.data if item.data is not None else item.path.read_bytes()  # type: ignore[union-attr]
        digest = sha1_bytes(data)
        if digest in seen or digest in avoided:
            report.skip("in an avoided corpus" if digest in avoided else "duplicate (same bytes)", item.origin)
            continue
        seen.add(digest)
        yield item, duration, data


@dataclass(frozen=True)
class _Clip:
    """One clip to write: a whole file as shipped, or a window of a long recording."""

    rel: PurePosixPath          # path in the corpus (audio/<package>/...)
    body: bytes
    duration: float
    origin: str
    tags: tuple[str, ...] = ()


def _clips(item: Found, duration: float, data: bytes, package: str, segment: float, max_segments: int,
           max_source: float, max_duration: float) -> list[_Clip] | None:
    """Phase 3: the clips of an admitted item: the file itself, or (longer than ``max_duration``)
    its windows; [] when no window is left, None when the recording is not cut (music, too long)."""
    if duration <= max_duration:
        return [_Clip(PurePosixPath("audio", package, item.out_name), data, round(duration, 3), item.origin,
                      ("speech",) if item.speech else ())]
    cuts = _segments(item, set(item.caption.split()), segment, max_segments, max_source)
    if cuts is None:
        return None
    stem = PurePosixPath(item.out_name).with_suffix("")   # "<stem>.segNNN": one split group
    return [_Clip(PurePosixPath("audio", package, f"{stem}.seg{int(start):03d}.flac"), body, round(segment, 3),
                  f"{item.origin}@{start:g}s", ("segment",)) for start, body in cuts]


def _write_clip(out_dir: Path, item: Found, clip: _Clip, package: str, templates: bool) -> dict:
    """Phase 4: write a clip's bytes (unless an equal-sized copy is there) and return its manifest row."""
    dest = out_dir / clip.rel
    if not (dest.is_file() and dest.stat().st_size == len(clip.body)):
        dest.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_data(dest, clip.body)
    captions = [item.caption, *item.extra]
    if templates and not item.speech:
        captions += [c for c in caption_variants(item.caption, str(clip.rel))[1:] if c not in captions]
    row = {"audio": str(clip.rel), "captions": captions, "source": f"{package} (Debian)",
           "license": item.license, "duration": clip.duration, "origin": clip.origin}
    if clip.tags:
        row["tags"] = list(clip.tags)
    return row


def build_corpus(
    out_dir: Path | str,
    packages: list[PackageSpec],
    cache: Path | str,
    max_duration: float = 15.0,
    min_duration: float = 0.05,
    avoid: Iterable[Path] = (),
    fetch: Callable[..., Path] = fetch_package,
    resolve: Callable[[str], list[str]] = resolve_names,
    log: Callable[[str], None] = lambda s: None,
    extra_rows: Callable[[], list[dict]] | None = None,
    speech_share: float = SPEECH_SHARE,
    templates: bool = False,
    segment: float = 0.0,
    max_segments: int = 3,
    max_source: float = 300.0,
) -> BuildResult:
    """Download, unpack, select and copy sound effects; write ``manifest.jsonl`` and ``report.json``.

    Args:
        out_dir: corpus folder (``manifest.jsonl`` + ``audio/<package>/...``).
        packages: specs, e.g. ``select_packages(None, evaluation=False)``.
        cache: folder for ``debs/`` and unpacked ``trees/`` (reused across runs).
        max_duration, min_duration: clips outside [min, max] seconds are skipped (music, clicks).
        avoid: manifests whose clips (by file content) must not appear in this corpus.
        fetch, resolve: download/unpack (called with a spec's `unpack` options when it has them) and
            glob expansion (replaceable in tests).
        extra_rows: called once after the packages; returns more manifest rows whose files it
            wrote under ``out_dir`` (the rendered instruments).
        speech_share: at most this share of all clips is speech (rows tagged "speech").
        templates: add a templated caption to each non-speech clip
            (:func:`soundseek.data.debian_captions.caption_variants`).
        segment: if > 0, a non-speech recording longer than ``max_duration`` (and at most
            ``max_source`` s) whose path and caption say nothing of music is cut into up to
            ``max_segments`` windows of ``segment`` s (FLAC, mono), each a clip with the file's caption.

    Duplicate files (same bytes) are kept once. Reruns reuse the cache and unchanged copies,
    and give the same manifest byte for byte.
    """
    out_dir, cache = Path(out_dir), Path(cache)
    avoided = manifest_hashes(avoid)
    seen: set[str] = set()
    rows: list[dict] = []
    reports: list[PackageReport] = []
    for spec in packages:
        reader = get_reader(spec.reader)
        for name in resolve(spec.name):
            report = PackageReport(name)
            reports.append(report)
            tree = fetch(name, cache, **_unpack_options(spec))
            items = cap_items(reader(tree, spec, report, name), spec, report)
            for item, duration, data in _admit(items, report, seen, avoided, min_duration, max_duration,
                                                long_ok=segment > 0):
                clips = _clips(item, duration, data, name, segment, max_segments, max_source, max_duration)
                if not clips:
                    report.skip(f"duration outside [{min_duration:g}, {max_duration:g}] s"
                                + (" (music, or too long to cut)" if clips is None else ""), item.origin)
                    continue
                rows.extend(_write_clip(out_dir, item, clip, name, templates) for clip in clips)
                report.kept += 1
            log(report.line())
    if extra_rows is not None:
        rows.extend(extra_rows())
    rows = _cap_speech(rows, speech_share, {r.package: r for r in reports}, out_dir)
    write_manifest(rows, out_dir / "manifest.jsonl")
    detail = {r.package: {"found": r.found, "kept": r.kept, "skipped": r.skipped} for r in reports}
    atomic_write_data(out_dir / "report.json", json.dumps(detail, indent=1, sort_keys=True).encode())
    digest = hashlib.sha256((out_dir / "manifest.jsonl").read_bytes()).hexdigest()
    return BuildResult(rows, reports, digest)
