"""The built-in synthetic captioned corpus (a Clotho-like demo, procedurally generated).

``synthetic_corpus_spec`` -- what :func:`make_synthetic_corpus` writes:

* Clips of 1-4 s (mono 16-bit WAV, ``sample_rate`` 22050 by default) holding 1-3
  *segments* played one after the other; a segment is one event type repeated ``count``
  times (1-4 for short events) at one loudness and, where it applies, one pitch.
* Event types (each with its own spectral shape, so a generic audio CNN separates them):

  ==========  ======================================================  ===============
  type        sound                                                   words
  ==========  ======================================================  ===============
  beep        pure tone, 0.08-0.2 s; high 1.8-2.6 kHz / low 350-550 Hz  beep, bleep, tone, pip
  bell        inharmonic partials (1, 2.76, 5.40, 8.93 f0), decaying  bell, chime, ding
  click       2-4 ms bright noise impulse                              click, tick, clack
  knock       damped 100-180 Hz sine + dull noise transient            knock, thud, thump
  burst       broadband noise, 0.15-0.4 s, fast decay                  noise burst, blast of static
  hiss        steady high-passed noise, 0.6-1.5 s                      hiss, hissing noise
  hum         50-100 Hz harmonic stack, 0.8-2 s                        hum, drone
  warble      siren-like FM tone (5-8 Hz vibrato, +-15 %)              warble, siren, wailing tone
  sweep_up    log sine sweep 300 Hz -> 3 kHz, 0.4-1 s                  rising sweep, upward chirp
  sweep_down  log sine sweep 3 kHz -> 300 Hz                           falling sweep, downward chirp
  ==========  ======================================================  ===============

* Loudness: loud (peak 0.9), normal (0.35, not mentioned) or quiet (0.08; "quiet",
  "soft", "faint"); pitch high/low for beep, bell and warble.
* 2-5 captions per clip, paraphrases from templates: counts ("three", "a pair of"),
  synonyms, adjective choices, order words ("X, then Y", "X followed by Y", "first X,
  then Y, and finally Z", "Y after X"), sentence frames ("You can hear ..."). Every
  caption names every segment's type and count in the right order; loudness is
  sometimes left out, as human captioners do.
* Files: ``out_dir/audio/00000.wav ...``, ``out_dir/manifest.jsonl`` (generic manifest
  format with ``split``, ``tags`` = event types, ``duration`` and ``events`` = the
  ground-truth segments with onsets/offsets), ``out_dir/synthetic.json`` (the arguments).
* Splits train/val/test with exact fractions (default 70/15/15) by a seeded permutation.
* Deterministic: clip ``i`` depends only on ``(seed, i, sample_rate)``; the same
  arguments give the same bytes (same numpy build). Re-running with the same arguments
  reuses the files; every file is written atomically (temp file + ``os.replace``).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from soundseek.data.formats.manifest import load_manifest
from soundseek.data.types import Corpus
from soundseek.fileio import atomic_write_data

VERSION = 1
LEVELS = {"loud": 0.9, "normal": 0.35, "quiet": 0.08}
LOUD_WORDS = {"loud": ["loud", "loud", "strong"], "quiet": ["quiet", "soft", "faint"]}
PITCH_WORDS = {"high": ["high", "high-pitched", "shrill"], "low": ["low", "low-pitched", "deep"]}
COUNT_WORDS = {1: ["a", "one", "a single"], 2: ["two", "a pair of", "a couple of"], 3: ["three", "three"],
               4: ["four", "four"]}
# type -> (nouns as (singular, plural), repeatable, has pitch, (min, max) seconds of one instance)
EVENTS: dict[str, tuple[list[tuple[str, str]], bool, bool, tuple[float, float]]] = {
    "beep": ([("beep", "beeps"), ("bleep", "bleeps"), ("short tone", "short tones"), ("pip", "pips")],
             True, True, (0.08, 0.2)),
    "bell": ([("bell", "bell strikes"), ("chime", "chimes"), ("ding", "dings")], True, True, (0.6, 1.1)),
    "click": ([("click", "clicks"), ("tick", "ticks"), ("clack", "clacks")], True, False, (0.002, 0.004)),
    "knock": ([("knock", "knocks"), ("thud", "thuds"), ("thump", "thumps")], True, False, (0.12, 0.2)),
    "burst": ([("noise burst", "noise bursts"), ("burst of noise", "bursts of noise"),
               ("blast of static", "blasts of static")], True, False, (0.15, 0.4)),
    "hiss": ([("hiss", ""), ("hissing noise", ""), ("steady hiss", "")], False, False, (0.6, 1.5)),
    "hum": ([("hum", ""), ("drone", ""), ("low hum", ""), ("steady drone", "")], False, False, (0.8, 2.0)),
    "warble": ([("siren-like warble", ""), ("warbling tone", ""), ("wailing siren", ""), ("siren", "")],
               False, True, (0.8, 1.8)),
    "sweep_up": ([("rising sweep", ""), ("upward chirp", ""), ("rising whistle", ""), ("ascending tone", "")],
                 False, False, (0.4, 1.0)),
    "sweep_down": ([("falling sweep", ""), ("downward chirp", ""), ("falling whistle", ""),
                    ("descending tone", "")], False, False, (0.4, 1.0)),
}
GAPS = {"beep": (0.06, 0.14), "bell": (0.05, 0.15), "click": (0.1, 0.25), "knock": (0.15, 0.3), "burst": (0.1, 0.2)}
MAX_SECONDS, MIN_SECONDS = 4.0, 1.0


# ---------------------------------------------------------------- synthesis of one instance
def _fade(x: np.ndarray, sr: int, ms: float = 5.0) -> np.ndarray:
    n = min(int(sr * ms / 1000), len(x) // 2)
    if n > 0:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n))
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _instance(kind: str, rng: np.random.Generator, sr: int, pitch: str | None, dur: float, f: float) -> np.ndarray:
    """One occurrence of ``kind`` lasting ``dur`` s; ``f`` a per-segment base frequency. (n,) float64."""
    n = max(int(dur * sr), 8)
    t = np.arange(n) / sr
    if kind == "beep":
        return _fade(np.sin(2 * np.pi * f * t), sr)
    if kind == "bell":
        partials = [(1.0, 1.0, 1.0), (2.76, 0.6, 1.7), (5.40, 0.35, 2.6), (8.93, 0.2, 3.5)]
        x = sum(a * np.sin(2 * np.pi * f * r * t) * np.exp(-t * 4.0 * d) for r, a, d in partials if f * r < sr / 2.2)
        return _fade(x, sr, 2.0)
    if kind == "click":
        w = rng.standard_normal(n) * np.exp(-t / 0.0008)
        return np.diff(w, prepend=0.0)
    if kind == "knock":
        tone = np.sin(2 * np.pi * f * t) * np.exp(-t / 0.03)
        noise = np.convolve(rng.standard_normal(n), np.ones(24) / 24, mode="same") * np.exp(-t / 0.008) * 3
        return _fade(tone + noise, sr, 1.0)
    if kind == "burst":
        env = np.minimum(t / 0.005, 1.0) * np.exp(-t / (dur / 3))
        return rng.standard_normal(n) * env
    if kind == "hiss":
        w = rng.standard_normal(n + 2)
        return _fade(w[2:] - 2 * w[1:-1] + w[:-2], sr, 30.0)  # second difference: energy rises with frequency
    if kind == "hum":
        am = 1 + 0.05 * np.sin(2 * np.pi * 2.0 * t)
        return _fade(am * sum(np.sin(2 * np.pi * f * k * t + k) / k for k in range(1, 7)), sr, 40.0)
    if kind == "warble":
        rate, depth = rng.uniform(5, 8), 0.15
        inst = f * (1 + depth * np.sin(2 * np.pi * rate * t))
        return _fade(np.sin(2 * np.pi * np.cumsum(inst) / sr), sr, 20.0)
    if kind in ("sweep_up", "sweep_down"):
        f0, f1 = (300.0, 3000.0) if kind == "sweep_up" else (3000.0, 300.0)
        k = np.log(f1 / f0) / dur
        return _fade(np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k), sr, 10.0)
    raise ValueError(f"Invalid event type {kind!r}. Valid: {', '.join(EVENTS)}")


def _base_freq(kind: str, pitch: str | None, rng: np.random.Generator) -> float:
    ranges = {"beep": {"high": (1800, 2600), "low": (350, 550)}, "bell": {"high": (900, 1300), "low": (250, 400)},
              "warble": {"high": (1000, 1400), "low": (400, 600)}}
    if kind in ranges:
        return float(rng.uniform(*ranges[kind][pitch or "high"]))
    return float(rng.uniform(*{"knock": (100, 180), "hum": (50, 100)}.get(kind, (1, 2))))


def _segment(kind: str, rng: np.random.Generator, sr: int) -> tuple[dict, np.ndarray]:
    """Random parameters of one segment and its audio (n,) float64, peak-normalised to its level."""
    nouns, repeatable, has_pitch, (lo, hi) = EVENTS[kind]
    count = int(rng.integers(1, 5)) if repeatable else 1
    if kind == "bell":
        count = min(count, 2)
    pitch = str(rng.choice(["high", "low"])) if has_pitch else None
    loud = str(rng.choice(["loud", "normal", "normal", "quiet"]))
    f = _base_freq(kind, pitch, rng)
    dur = float(rng.uniform(lo, hi))
    parts = []
    for j in range(count):
        if j:
            parts.append(np.zeros(int(rng.uniform(*GAPS[kind]) * sr)))
        parts.append(_instance(kind, rng, sr, pitch, dur, f))
    x = np.concatenate(parts)
    x *= LEVELS[loud] / max(np.abs(x).max(), 1e-9)
    return {"type": kind, "count": count, "pitch": pitch, "loudness": loud}, x


# ---------------------------------------------------------------- captions
def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _phrase(ev: dict, rng: np.random.Generator, with_loudness: bool) -> str:
    nouns, repeatable, _, _ = EVENTS[ev["type"]]
    sing, plur = _pick(rng, nouns)
    adjs = []
    if with_loudness and ev["loudness"] != "normal":
        adjs.append(_pick(rng, LOUD_WORDS[ev["loudness"]]))
    if ev["count"] > 1 and ev["type"] in ("beep", "click", "knock") and "short" not in sing and rng.random() < 0.4:
        adjs.append("short")
    if ev["pitch"] and not sing.startswith(("low", "high")):
        adjs.append(_pick(rng, PITCH_WORDS[ev["pitch"]]))
    noun = " ".join(adjs + [sing if ev["count"] == 1 else plur])
    if ev["count"] == 1:
        det = _pick(rng, COUNT_WORDS[1]) if repeatable else "a"
        if det == "a" and noun[0] in "aeiou":
            det = "an"
        return f"{det} {noun}"
    return f"{_pick(rng, COUNT_WORDS[ev['count']])} {noun}"


def _caption(events: list[dict], rng: np.random.Generator) -> str:
    ph = [_phrase(e, rng, rng.random() < 0.75) for e in events]
    lead = events[0]  # the event named first in the sentence
    if len(ph) == 1:
        s = ph[0]
    elif len(ph) == 2:
        a, b = ph
        s = _pick(rng, [f"{a}, then {b}", f"{a} followed by {b}", f"{a}, and then {b}", f"first {a}, then {b}",
                        f"{b} after {a}", f"{a} before {b}"])
        lead = events[1] if s.startswith(f"{b} after") else lead
    else:
        a, b, c = ph
        s = _pick(rng, [f"{a}, then {b}, then {c}", f"{a}, followed by {b} and then {c}",
                        f"first {a}, then {b}, and finally {c}"])
    if not s.startswith("first"):
        there = "there is" if lead["count"] == 1 else "there are"
        s = _pick(rng, ["{}", "{}", "{}", "you can hear {}", there + " {}", "a recording of {}"]).format(s)
    return s[0].upper() + s[1:] + "."


def _clip(i: int, seed: int, sr: int) -> tuple[np.ndarray, dict]:
    """Clip ``i``: audio (n,) int16 and its manifest fields (captions, tags, events, duration)."""
    rng = np.random.default_rng([seed, i, sr])
    kinds = list(EVENTS)
    while True:
        n_seg = int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))
        events, pieces, t = [], [np.zeros(int(rng.uniform(0.05, 0.2) * sr))], 0.0
        t = len(pieces[0]) / sr
        prev = None
        for _ in range(n_seg):
            kind = _pick(rng, [k for k in kinds if k != prev])
            prev = kind
            ev, x = _segment(kind, rng, sr)
            ev["onset"], ev["offset"] = round(t, 4), round(t + len(x) / sr, 4)
            events.append(ev)
            gap = np.zeros(int(rng.uniform(0.1, 0.3) * sr))
            pieces += [x, gap]
            t += (len(x) + len(gap)) / sr
        if t <= MAX_SECONDS:
            break
    x = np.concatenate(pieces)
    if len(x) < MIN_SECONDS * sr:
        x = np.concatenate([x, np.zeros(int(MIN_SECONDS * sr) - len(x))])
    x = x + rng.standard_normal(len(x)) * 1e-3  # noise floor (no digital silence)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    n_caps = int(rng.integers(2, 6))
    caps: list[str] = []
    for _ in range(50):
        c = _caption(events, rng)
        if c not in caps:
            caps.append(c)
        if len(caps) == n_caps:
            break
    info = {"captions": caps, "tags": sorted({e["type"] for e in events}), "duration": round(len(pcm) / sr, 4),
            "events": events}
    return pcm, info


# ---------------------------------------------------------------- corpus on disk
def _splits(n: int, fractions: dict[str, float], seed: int) -> list[str]:
    if abs(sum(fractions.values()) - 1) > 1e-6 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    names = list(fractions)
    bounds = np.round(np.cumsum([fractions[k] for k in names]) * n).astype(int)
    order = np.random.default_rng([seed, 2**31]).permutation(n)
    out = [""] * n
    start = 0
    for name, end in zip(names, bounds):
        for j in order[start:end]:
            out[j] = name
        start = end
    return out


def make_synthetic_corpus(out_dir: Path | str, n_clips: int = 600, seed: int = 0, sample_rate: int = 22050,
                          fractions: dict[str, float] | None = None) -> Corpus:
    """Write (or reuse) the synthetic captioned corpus and return it (see the module docstring).

    Args:
        out_dir: folder to write ``audio/*.wav``, ``manifest.jsonl`` and ``synthetic.json`` into.
        n_clips: number of clips.
        seed: master seed; clip ``i`` depends only on (seed, i, sample_rate).
        sample_rate: Hz, at least 8000 (sweeps reach 3 kHz).
        fractions: split name -> fraction (default train/val/test 0.7/0.15/0.15, exact counts).

    Returns:
        The corpus read back with :func:`soundseek.data.formats.load_manifest` (name "synthetic").
    """
    if n_clips < 1:
        raise ValueError(f"n_clips must be >= 1, got {n_clips}")
    if sample_rate < 8000:
        raise ValueError(f"sample_rate must be >= 8000 Hz, got {sample_rate}")
    fractions = dict(fractions or {"train": 0.7, "val": 0.15, "test": 0.15})
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    spec = {"version": VERSION, "n_clips": n_clips, "seed": seed, "sample_rate": sample_rate, "fractions": fractions}
    spec_path, man_path = out / "synthetic.json", out / "manifest.jsonl"
    names = [f"audio/{i:05d}.wav" for i in range(n_clips)]
    same = spec_path.is_file() and json.loads(spec_path.read_text()) == spec and man_path.is_file()
    if same and all((out / n).is_file() for n in names):
        return _load(man_path)
    splits = _splits(n_clips, fractions, seed)
    lines = []
    for i, name in enumerate(names):
        pcm, info = _clip(i, seed, sample_rate)
        if not (same and (out / name).is_file()):
            buf = io.BytesIO()
            sf.write(buf, pcm, sample_rate, format="WAV", subtype="PCM_16")
            atomic_write_data(out / name, buf.getvalue())
        lines.append(json.dumps({"audio": name, "split": splits[i], **info}, ensure_ascii=False))
    atomic_write_data(man_path, ("\n".join(lines) + "\n").encode("utf-8"))
    atomic_write_data(spec_path, json.dumps(spec, indent=1).encode("utf-8"))
    return _load(man_path)


def _load(man_path: Path) -> Corpus:
    corpus = load_manifest(man_path)
    corpus.name = "synthetic"
    return corpus
