"""Captioned instrument sounds rendered from real samples: General MIDI + FluidR3 (``fluid-soundfont-gm``).

Every General MIDI program plays a few short phrases and single notes at different pitches
and loudness, and every named hit of the GM drum kit is struck softly, hard and several times;
each clip is captioned with the instrument's name ("a violin playing a slow melody", "a single
low cello note", "a loud hand clap hit"). The phrases come from ``random.Random(seed)``, the
whole set is one MIDI file rendered by Debian's ``fluidsynth`` (reverb and chorus off) and cut
at known times, so a rerun with the same seed writes the same clips. The sound font is the
Debian package ``fluid-soundfont-gm`` (FluidR3, MIT), downloaded like the other packages.
"""
from __future__ import annotations

import random
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

GM_PROGRAMS = """acoustic grand piano|bright acoustic piano|electric grand piano|honky-tonk piano|electric piano|
electric piano|harpsichord|clavinet|celesta|glockenspiel|music box|vibraphone|marimba|xylophone|tubular bells|
dulcimer|drawbar organ|percussive organ|rock organ|church organ|reed organ|accordion|harmonica|tango accordion|
nylon string acoustic guitar|steel string acoustic guitar|jazz electric guitar|clean electric guitar|
muted electric guitar|overdriven guitar|distorted electric guitar|guitar harmonics|acoustic bass|
fingered electric bass|picked electric bass|fretless bass|slap bass|slap bass|synth bass|synth bass|violin|viola|
cello|double bass|tremolo strings|pizzicato strings|harp|timpani|string ensemble|string ensemble|synth strings|
synth strings|choir singing aah|voice singing ooh|synth voice|orchestra hit|trumpet|trombone|tuba|muted trumpet|
french horn|brass section|synth brass|synth brass|soprano saxophone|alto saxophone|tenor saxophone|
baritone saxophone|oboe|english horn|bassoon|clarinet|piccolo|flute|recorder|pan flute|blown bottle|shakuhachi|
whistle|ocarina|square wave synth lead|sawtooth synth lead|calliope synth lead|chiff synth lead|
charang synth lead|voice synth lead|fifths synth lead|bass and lead synth|new age synth pad|warm synth pad|
polysynth pad|choir synth pad|bowed synth pad|metallic synth pad|halo synth pad|sweep synth pad|
rain synth effect|soundtrack synth effect|crystal synth effect|atmosphere synth effect|brightness synth effect|
goblins synth effect|echoes synth effect|sci-fi synth effect|sitar|banjo|shamisen|koto|kalimba|bagpipe|fiddle|
shanai|tinkle bell|agogo|steel drums|woodblock|taiko drum|melodic tom|synth drum|reverse cymbal|
guitar fret noise|breath noise|seashore waves|bird tweet|telephone ring|helicopter|applause|gunshot"""
PROGRAM_NAMES: tuple[str, ...] = tuple(n.strip() for n in GM_PROGRAMS.replace("\n", "").split("|"))
"""The 128 General MIDI melodic programs (GM 1 names, spelled out as captions)."""

GM_DRUMS: dict[int, str] = {
    35: "acoustic bass drum", 36: "bass drum", 37: "side stick", 38: "acoustic snare drum", 39: "hand clap",
    40: "electric snare drum", 41: "low floor tom", 42: "closed hi-hat", 43: "high floor tom",
    44: "pedal hi-hat", 45: "low tom", 46: "open hi-hat", 47: "low mid tom", 48: "high mid tom",
    49: "crash cymbal", 50: "high tom", 51: "ride cymbal", 52: "chinese cymbal", 53: "ride bell",
    54: "tambourine", 55: "splash cymbal", 56: "cowbell", 57: "crash cymbal", 58: "vibraslap",
    59: "ride cymbal", 60: "high bongo", 61: "low bongo", 62: "muted high conga", 63: "open high conga",
    64: "low conga", 65: "high timbale", 66: "low timbale", 67: "high agogo", 68: "low agogo",
    69: "cabasa", 70: "maracas", 71: "short whistle", 72: "long whistle", 73: "short guiro",
    74: "long guiro", 75: "claves", 76: "high wood block", 77: "low wood block", 78: "muted cuica",
    79: "open cuica", 80: "muted triangle", 81: "open triangle",
}
"""Named hits of the General MIDI percussion key map (channel 10)."""

_RANGES = [(36, 96), (60, 96), (36, 84), (40, 76), (28, 55), (40, 84), (48, 84), (45, 79),
           (50, 80), (60, 96), (48, 84), (48, 84), (48, 84), (48, 84), (48, 84), (48, 72)]
"""Playable (low, high) MIDI pitch per GM family of 8 programs."""
_OVERRIDES = {40: (55, 96), 41: (48, 84), 42: (36, 72), 43: (28, 55), 58: (28, 55), 47: (36, 60), 64: (56, 84),
              65: (49, 79), 66: (44, 75), 67: (36, 69), 70: (34, 70), 71: (50, 86)}
SILENT_PEAK = 0.003
"""Clips whose peak stays below this (about -50 dBFS) are left out as silent."""
TICKS = 480
"""Ticks per quarter note; at the default tempo (120 bpm) one tick is 1/960 s."""


@dataclass(frozen=True)
class Clip:
    """One rendered clip: where it lies in the long rendering and its captions."""

    name: str                            # file stem under audio/fluid-soundfont-gm/
    captions: tuple[str, ...]
    start: float                         # seconds in the rendering
    length: float
    events: tuple[tuple[float, bytes], ...]   # (time in s, MIDI channel message)


def article(name: str) -> str:
    """``"a violin"``, ``"an oboe"``, ``"tremolo strings"`` (plural names take none)."""
    last = name.split()[-1]
    if last.endswith("s") and not last.endswith(("ss", "us")) and last not in ("bass",):
        return name
    return ("an " if name[0] in "aeiou" else "a ") + name


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def plan(seed: int = 0, gap: float = 1.5) -> list[Clip]:
    """Every clip to render, with its MIDI events and captions (deterministic for ``seed``)."""
    rng = random.Random(seed)
    clips: list[Clip] = []
    t = 0.5

    def add(name: str, captions: tuple[str, ...], notes: list[tuple[float, float, int, int]], ch: int,
            program: int | None) -> None:
        nonlocal t
        events: list[tuple[float, bytes]] = []
        if program is not None:
            events.append((t - 0.25, bytes([0xC0 | ch, program])))
        end = 0.0
        for onset, dur, pitch, vel in notes:
            events.append((t + onset, bytes([0x90 | ch, pitch, vel])))
            events.append((t + onset + dur, bytes([0x80 | ch, pitch, 0])))
            end = max(end, onset + dur)
        length = end + 1.0                                 # keep the release tail
        clips.append(Clip(name, captions, t, length, tuple(events)))
        t += length + gap

    for prog, inst in enumerate(PROGRAM_NAMES):
        lo, hi = _OVERRIDES.get(prog, _RANGES[prog // 8])
        mid = (lo + hi) // 2
        a = article(inst)
        base = f"{prog:03d}_{_slug(inst)}"
        if prog >= 120:                                    # GM sound effects: the sound is the name
            for k, (pitch, dur) in enumerate([(60, 1.5), (mid, 2.5), (rng.randint(lo, hi), 1.0), (48, 2.0),
                                              (72, 1.2), (rng.randint(lo, hi), 3.0)]):
                add(f"{base}_{k}", (inst, f"the sound of {a}"), [(0.0, dur, pitch, rng.randint(70, 120))], 0, prog)
            continue
        for k in range(2):
            add(f"{base}_low{k}", (f"a single low {inst} note", f"{inst} low note"),
                [(0.0, 1.2, rng.randint(lo, lo + (mid - lo) // 2), rng.randint(70, 100))], 0, prog)
            add(f"{base}_high{k}", (f"a single high {inst} note", f"{inst} high note"),
                [(0.0, 1.0, rng.randint(mid + (hi - mid) // 2, hi), rng.randint(70, 100))], 0, prog)
        add(f"{base}_mid", (f"a single {inst} note", f"{inst} note"),
            [(0.0, 1.0, rng.randint(lo + (mid - lo) // 2, mid + (hi - mid) // 2), rng.randint(70, 100))], 0, prog)
        add(f"{base}_loud", (f"a loud {inst} note", f"{inst} played loudly"),
            [(0.0, 1.0, rng.randint(lo, hi), rng.randint(112, 127))], 0, prog)
        add(f"{base}_soft", (f"a soft {inst} note", f"{inst} played quietly"),
            [(0.0, 1.0, rng.randint(lo, hi), rng.randint(30, 50))], 0, prog)
        for k in range(2):
            notes, at, p = [], 0.0, rng.randint(lo, hi)
            for _ in range(rng.randint(3, 4)):             # slow melody: long notes, small steps
                notes.append((at, 0.55, p, rng.randint(60, 95)))
                at += 0.6
                p = min(hi, max(lo, p + rng.choice([-4, -3, -2, -1, 1, 2, 3, 5])))
            add(f"{base}_slow{k}", (f"{a} playing a slow melody", f"slow {inst} melody"), notes, 0, prog)
            notes, at, p = [], 0.0, rng.randint(lo, hi)
            for _ in range(rng.randint(6, 9)):             # fast phrase
                notes.append((at, 0.14, p, rng.randint(70, 110)))
                at += 0.15
                p = min(hi, max(lo, p + rng.choice([-5, -3, -2, 2, 3, 4, 7])))
            add(f"{base}_fast{k}", (f"{a} playing a fast phrase", f"quick {inst} notes"), notes, 0, prog)
        start = rng.randint(lo, max(lo, hi - 12))
        scale = [0, 2, 4, 5, 7, 9, 11, 12]
        add(f"{base}_up", (f"{a} playing a rising scale", f"ascending {inst} notes"),
            [(0.2 * k, 0.18, min(hi, start + d), 85) for k, d in enumerate(scale)], 0, prog)
        add(f"{base}_down", (f"{a} playing a falling scale", f"descending {inst} notes"),
            [(0.2 * k, 0.18, min(hi, start + d), 85) for k, d in enumerate(reversed(scale))], 0, prog)
        p = rng.randint(lo, hi)
        add(f"{base}_repeat", (f"the same {inst} note played several times", f"repeated {inst} note"),
            [(0.3 * k, 0.2, p, rng.randint(60, 110)) for k in range(4)], 0, prog)
        if prog // 8 in (0, 1, 2, 3, 6, 11):               # instruments that play chords
            root = rng.randint(lo, max(lo, hi - 7))
            add(f"{base}_chord", (f"{a} playing a chord", f"{inst} chord"),
                [(0.0, 1.5, root + d, 80) for d in (0, 4, 7)], 0, prog)
    for key, hit in GM_DRUMS.items():
        a = article(hit)
        base = f"drum_{key:02d}_{_slug(hit)}"
        add(f"{base}_soft", (f"{a} hit", f"a soft {hit} hit"), [(0.0, 0.3, key, rng.randint(40, 70))], 9, None)
        add(f"{base}_loud", (f"a loud {hit} hit", f"{hit} struck hard"), [(0.0, 0.3, key, rng.randint(110, 127))], 9, None)
        step = rng.choice([0.2, 0.25, 0.3])
        hits = [(k * step, 0.15, key, rng.randint(60, 120)) for k in range(rng.randint(3, 5))]
        add(f"{base}_repeat", (f"{hit} played several times", f"{hit} hits"), hits, 9, None)
        hits = [(k * 0.08, 0.07, key, min(127, 50 + 6 * k)) for k in range(12)]
        add(f"{base}_roll", (f"a fast {hit} roll getting louder", f"rapid {hit} hits"), hits, 9, None)
    return clips


def midi_file(clips: list[Clip]) -> bytes:
    """One-track standard MIDI file (format 0, 120 bpm) with every clip's events."""
    events = sorted(((round(t * 2 * TICKS), msg) for c in clips for t, msg in c.events),
                    key=lambda e: (e[0], e[1][0] & 0xF0 != 0xC0, e[1][0] & 0xF0 == 0x90))
    if clips:
        events.append((round((clips[-1].start + clips[-1].length + 0.5) * 2 * TICKS), b""))
    body = bytearray()
    now = 0
    for tick, msg in events:
        delta, now = tick - now, tick
        var = [delta & 0x7F]
        delta >>= 7
        while delta:
            var.insert(0, 0x80 | (delta & 0x7F))
            delta >>= 7
        body.extend(bytes(var) + (msg if msg else b"\xff\x01\x00"))   # empty text event marks the end
    body.extend(b"\x00\xff\x2f\x00")
    return (b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS) + b"MTrk" + struct.pack(">I", len(body)) + bytes(body))


def render(out_dir: Path | str, soundfont: Path | str, seed: int = 0, sample_rate: int = 22050,
           package: str = "fluid-soundfont-gm", license: str = "MIT", timeout: float = 1800) -> list[dict]:
    """Render every clip of :func:`plan` into ``out_dir/audio/<package>/`` (FLAC, mono) and return
    manifest rows (tagged ``rendered``). Clips already there are not rendered again.

    Raises:
        FileNotFoundError: ``fluidsynth`` is not installed or the sound font is missing.
    """
    import soundfile as sf

    out_dir, soundfont = Path(out_dir), Path(soundfont)
    clips = plan(seed)
    folder = PurePosixPath("audio", package, f"seed{seed}")
    paths = [out_dir / folder / f"{c.name}.flac" for c in clips]
    if not all(p.is_file() for p in paths):
        exe = shutil.which("fluidsynth")
        if exe is None:
            raise FileNotFoundError("fluidsynth not found: install the Debian package 'fluidsynth'")
        if not soundfont.is_file():
            raise FileNotFoundError(f"sound font {soundfont} not found")
        with tempfile.TemporaryDirectory() as tmp:
            mid, wav = Path(tmp) / "all.mid", Path(tmp) / "all.wav"
            mid.write_bytes(midi_file(clips))
            subprocess.run([exe, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", "1.0", "-r", str(sample_rate),
                            "-O", "s16", "-T", "wav", "-F", str(wav), str(soundfont), str(mid)],
                           check=True, capture_output=True, timeout=timeout)
            audio, sr = sf.read(wav, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        for c, p in zip(clips, paths):
            seg = mono[int(c.start * sr): int((c.start + c.length) * sr)]
            tmp_path = p.with_name(f".{p.name}.tmp")
            sf.write(tmp_path, np.clip(seg, -1, 1), sr, format="FLAC", subtype="PCM_16")
            tmp_path.replace(p)
    rows = []
    for c, p in zip(clips, paths):
        if np.abs(sf.read(p, dtype="float32")[0]).max() < SILENT_PEAK:
            continue                                      # the note lies outside the instrument's samples
        rows.append({"audio": str(folder / f"{c.name}.flac"), "captions": list(c.captions),
                     "source": f"{package} (Debian, rendered with fluidsynth)", "license": license,
                     "duration": round(c.length, 3), "origin": f"General MIDI, seed {seed}", "tags": ["rendered"]})
    return rows
