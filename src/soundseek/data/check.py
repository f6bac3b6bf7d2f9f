"""Corpus health check behind ``soundseek data check PATH`` (METHODS.md §1).

:func:`check_corpus` counts clips/captions per split, probes every audio header with
``soundfile.info`` (format, sample rate, channels, duration; unreadable, corrupt and empty
files become error problems) and gathers the reader's problems into one
:class:`CheckReport`. ``report.ok`` is False when any problem is an error.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from soundseek.data.types import Corpus, Problem

DURATION_TOLERANCE = 0.5  # seconds: a stated duration further than this from the header's is a warning


@dataclass
class CheckReport:
    name: str
    n_clips: int
    n_captions: int
    per_split: dict[str, dict[str, int]]  # split (or "(none)") -> {"clips", "captions"}
    captions_per_clip: dict[int, int]  # number of captions -> number of clips
    duration: dict[str, float] | None  # total/min/median/max seconds (None: nothing known)
    formats: dict[str, int]  # container format ("WAV", "FLAC", ...) or extension -> clips
    sample_rates: dict[int, int]
    channels: dict[int, int]
    problems: list[Problem] = field(default_factory=list)
    probed: bool = True

    @property
    def ok(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @property
    def n_errors(self) -> int:
        return sum(p.severity == "error" for p in self.problems)

    @property
    def n_warnings(self) -> int:
        return sum(p.severity == "warning" for p in self.problems)

    def to_dict(self) -> dict:
        return {
            "name": self.name, "ok": self.ok, "clips": self.n_clips, "captions": self.n_captions,
            "per_split": self.per_split, "captions_per_clip": {str(k): v for k, v in self.captions_per_clip.items()},
            "duration": self.duration, "formats": self.formats,
            "sample_rates": {str(k): v for k, v in self.sample_rates.items()},
            "channels": {str(k): v for k, v in self.channels.items()}, "probed": self.probed,
            "errors": self.n_errors, "warnings": self.n_warnings,
            "problems": [{"severity": p.severity, "where": p.where, "message": p.message} for p in self.problems],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_text(self, max_problems: int = 50) -> str:
        def fmt(d: dict) -> str:
            return ", ".join(f"{k}: {v}" for k, v in d.items()) or "-"

        lines = [f"corpus {self.name}: {self.n_clips} clips, {self.n_captions} captions"]
        for s, d in self.per_split.items():
            lines.append(f"  split {s}: {d['clips']} clips, {d['captions']} captions")
        lines.append(f"captions per clip: {fmt(self.captions_per_clip)}")
        if self.duration:
            d = self.duration
            lines.append(f"duration (s): total {d['total']:.1f} ({d['total'] / 3600:.2f} h), min {d['min']:.2f}, "
                         f"median {d['median']:.2f}, max {d['max']:.2f}")
        src = "headers" if self.probed else "file extensions"
        lines.append(f"audio formats ({src}): {fmt(self.formats)}")
        if self.probed:
            lines.append(f"sample rates: {fmt(self.sample_rates)}")
            lines.append(f"channels: {fmt(self.channels)}")
        lines.append(f"{'OK' if self.ok else 'FAILED'}: {self.n_errors} errors, {self.n_warnings} warnings")
        for p in self.problems[:max_problems]:
            lines.append(f"  {p}")
        if len(self.problems) > max_problems:
            lines.append(f"  ... and {len(self.problems) - max_problems} more (use --json for all)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


def probe(path: Path) -> tuple[dict | None, str | None]:
    """Header facts of one audio file, or (None, reason) when it cannot be used."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as e:  # noqa: BLE001 -- libsndfile raises several types; report them all
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return None, f"unreadable or corrupt audio: {reason}"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "empty audio (0 frames)"
    return {"format": info.format, "sample_rate": int(info.samplerate), "channels": int(info.channels),
            "duration": info.frames / info.samplerate}, None


def check_corpus(corpus: Corpus, probe_audio: bool = True, progress: bool = True) -> CheckReport:
    """Count, probe and collect problems of a corpus.

    Args:
        corpus: as returned by a reader (its ``problems`` are included in the report).
        probe_audio: read every audio header (slower; finds corrupt/empty files). Without it,
            durations come from the format (``clip.duration``) and formats from extensions.
        progress: show a tqdm bar on stderr while probing.
    """
    problems = list(corpus.problems)
    per_split: dict[str, dict[str, int]] = {}
    for c in corpus.clips:
        d = per_split.setdefault(c.split if c.split is not None else "(none)", {"clips": 0, "captions": 0})
        d["clips"] += 1
        d["captions"] += len(c.captions)
    seen: dict[str, int] = {}
    for i, c in enumerate(corpus.clips):
        if c.id in seen:
            problems.append(Problem("error", c.id, f"duplicate clip id (clips {seen[c.id]} and {i})"))
        seen.setdefault(c.id, i)
    formats: Counter = Counter()
    rates: Counter = Counter()
    chans: Counter = Counter()
    durations: list[float] = []
    clips = corpus.clips
    if probe_audio and progress:
        from tqdm.auto import tqdm

        clips = tqdm(clips, desc=f"probing {corpus.name}", unit="file", leave=False)
    for c in clips:
        if not probe_audio:
            formats[c.audio.suffix.lower().lstrip(".") or "(none)"] += 1
            if c.duration is not None:
                durations.append(c.duration)
            continue
        info, reason = probe(c.audio)
        if info is None:
            problems.append(Problem("error", str(c.audio), f"clip {c.id!r}: {reason}"))
            continue
        formats[info["format"]] += 1
        rates[info["sample_rate"]] += 1
        chans[info["channels"]] += 1
        durations.append(info["duration"])
        if c.duration is not None and abs(c.duration - info["duration"]) > DURATION_TOLERANCE:
            problems.append(Problem("warning", str(c.audio), f"clip {c.id!r}: stated duration {c.duration:.2f} s "
                                    f"but the file lasts {info['duration']:.2f} s"))
    dur = None
    if durations:
        a = np.asarray(durations, dtype=np.float64)
        dur = {"total": float(a.sum()), "min": float(a.min()), "median": float(np.median(a)), "max": float(a.max())}
    cpc = Counter(len(c.captions) for c in corpus.clips)
    return CheckReport(
        name=corpus.name, n_clips=len(corpus.clips), n_captions=sum(len(c.captions) for c in corpus.clips),
        per_split=dict(sorted(per_split.items())), captions_per_clip=dict(sorted(cpc.items())), duration=dur,
        formats=dict(formats.most_common()), sample_rates=dict(sorted(rates.items())),
        channels=dict(sorted(chans.items())), problems=problems, probed=probe_audio)
