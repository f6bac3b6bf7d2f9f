"""Shared helpers for the index/service/browser tests: a small generated audio folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16000


def tone(freq: float, seconds: float = 0.5, sr: int = SR, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def make_audio_folder(root: Path, n: int = 12, bad: bool = True) -> dict[str, float]:
    """n good files (wav/flac/ogg, nested) + (if ``bad``) an empty, a text-as-wav and a truncated file.

    Returns key -> tone frequency of the good files."""
    root.mkdir(parents=True, exist_ok=True)
    freqs = {}
    exts = ["wav", "flac", "ogg"]
    for i in range(n):
        f = 200.0 * 1.35 ** i
        sub = root / ("low" if f < 1000 else "high")
        sub.mkdir(exist_ok=True)
        ext = exts[i % 3]
        p = sub / f"tone_{i:02d}.{ext}"
        sf.write(p, tone(f, 0.4 + 0.05 * i, seed=i), SR, format=ext.upper())
        freqs[p.relative_to(root).as_posix()] = f
    if bad:
        (root / "empty.wav").write_bytes(b"")
        (root / "notaudio.wav").write_text("this is not audio at all\n" * 20)
        good = (root / "low" / "tone_00.wav").read_bytes()
        (root / "truncated.flac").write_bytes(b"fLaC" + good[4:200])
        (root / "readme.txt").write_text("ignored: not an audio extension")
    return freqs


def write_manifest(root: Path, freqs: dict[str, float]) -> Path:
    p = root / "manifest.jsonl"
    with open(p, "w") as f:
        for key, fr in sorted(freqs.items()):
            f.write(json.dumps({"audio": key, "captions": [f"a {'low' if fr < 1000 else 'high'} tone", f"tone {fr:.0f} hz"],
                                "tags": ["tone"]}) + "\n")
    return p
