"""Hostile and damaged inputs for the hardening tests, generated on the fly (nothing stored)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def wav_low_rate(path: Path, rate: int, nbytes: int) -> Path:
    """A small PCM_16 WAV whose header declares ``rate`` Hz: ``nbytes`` of data is hours of audio."""
    rng = np.random.default_rng(0)
    x = (0.1 * rng.standard_normal(nbytes // 2)).astype(np.float32)
    sf.write(path, x, rate, subtype="PCM_16", format="WAV")
    return path


def flac_long_silence(path: Path, seconds: float = 7200.0, rate: int = 44100) -> Path:
    """``seconds`` of digital silence as FLAC: about 1 MB on disk for two hours at 44.1 kHz."""
    block = np.zeros(rate * 60, np.float32)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        left = int(seconds * rate)
        while left > 0:
            n = min(left, block.size)
            f.write(block[:n])
            left -= n
    return path


def bombs(folder: Path) -> dict[str, Path]:
    """The three decode bombs: 40 KB WAV at 2 Hz, ~1 MB FLAC of two hours, 1 MB WAV at 10 Hz."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"wav_2hz": wav_low_rate(folder / "bomb_2hz.wav", 2, 40_000),
            "flac_2h": flac_long_silence(folder / "bomb_2h.flac"),
            "wav_10hz": wav_low_rate(folder / "bomb_10hz.wav", 10, 1_000_000)}


def peak_rss_mib() -> float:
    """Peak RSS of this process (Linux ``VmHWM``) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
