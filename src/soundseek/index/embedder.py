"""The embedder protocol the index and the service code against, and a fake for tests.

An *embedder* turns audio and text into L2-normalised vectors of one width (the global
embedding of METHODS.md §8) and, optionally, scores (text, clip) pairs with a pair-wise scorer
(TAP/GPA re-ranking, METHODS.md §8 "two-stage search"). The real one wraps the trained
dual encoder (``soundseek.model``); :class:`HashEmbedder` is a deterministic stand-in, cheap
enough for unit tests, whose audio embeddings of similar sounds are close.
"""
from __future__ import annotations

import hashlib
import re
import time
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "HashEmbedder", "check_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """What :func:`soundseek.index.build_index`, :class:`Searcher` and the service need.

    Attributes:
        dim: width of the clip and text embeddings.
        sample_rate: rate (Hz) of the waveforms ``embed_audio`` expects.
    """

    dim: int
    sample_rate: int

    def fingerprint(self) -> str:
        """Identifies model weights + preprocessing; an index is rebuilt when it changes."""
        ...

    def embed_audio(self, waves: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """waves: list of (n_i,) float32 mono at ``sample_rate`` ->
        ((n, dim) float32 L2-normalised clip embeddings, per-clip frame features (T_i, F))."""
        ...

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """(n,) texts -> (n, dim) float32 L2-normalised."""
        ...

    def rerank(self, text: str, frames: list[np.ndarray]) -> np.ndarray | None:
        """Pair-wise scores (n,) of ``text`` against n clips' frames, or None (no pair scorer)."""
        ...


def check_embedder(embedder: object) -> None:
    """Raise TypeError naming what is missing when ``embedder`` does not follow :class:`Embedder`."""
    missing = [a for a in ("dim", "sample_rate", "fingerprint", "embed_audio", "embed_text", "rerank")
               if not hasattr(embedder, a)]
    if missing:
        raise TypeError(f"{type(embedder).__name__} is not an Embedder: missing {', '.join(missing)}")


def _l2n(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Deterministic fake embedder (tests, benchmarks, demos without weights).

    Audio: frames of 1024 samples (hop 512) -> magnitude spectrum pooled into ``n_bands``
    log-spaced bands -> log -> frame features (T, n_bands) float16; the clip embedding is a
    fixed random projection of the mean frame (minus a constant) -> L2-normalised, so similar
    spectra give similar embeddings. Text: hashed bag of words (each word a seeded Gaussian
    vector, summed, normalised). Words naming a band ("low", "mid", "high") add that band's
    projection, so "low rumble" prefers low-pitched clips — enough to check a ranking.

    Args:
        dim: embedding width.
        sample_rate: expected waveform rate.
        n_bands: frame feature width F.
        seed: projection seed (part of the fingerprint).
        delay: seconds slept per ``embed_audio`` call (crash/progress tests).
    """

    def __init__(self, dim: int = 64, sample_rate: int = 16000, n_bands: int = 32, seed: int = 0,
                 delay: float = 0.0) -> None:
        if dim < 2 or n_bands < 4:
            raise ValueError(f"dim must be >= 2 and n_bands >= 4, got dim={dim}, n_bands={n_bands}")
        self.dim, self.sample_rate, self.n_bands, self.seed, self.delay = dim, sample_rate, n_bands, seed, delay
        rng = np.random.default_rng(seed)
        self._proj = rng.standard_normal((n_bands, dim)).astype(np.float32) / np.sqrt(n_bands)
        edges = np.geomspace(1, 513, n_bands + 1).astype(int)
        self._edges = np.maximum.accumulate(np.maximum(edges, np.arange(n_bands + 1) + 1))
        third = n_bands // 3
        self._band_words = {"low": slice(0, third), "mid": slice(third, 2 * third), "high": slice(2 * third, n_bands)}

    def fingerprint(self) -> str:
        return f"hash-embedder/v1 dim={self.dim} sr={self.sample_rate} bands={self.n_bands} seed={self.seed}"

    def _frames(self, wave: np.ndarray) -> np.ndarray:
        x = np.asarray(wave, dtype=np.float32).reshape(-1)
        if x.size < 1024:
            x = np.pad(x, (0, 1024 - x.size))
        n = 1 + (x.size - 1024) // 512
        idx = np.arange(1024)[None, :] + 512 * np.arange(n)[:, None]  # (T, 1024)
        spec = np.abs(np.fft.rfft(x[idx] * np.hanning(1024).astype(np.float32), axis=-1))  # (T, 513)
        cs = np.concatenate([np.zeros((n, 1), np.float32), np.cumsum(spec, axis=-1)], axis=-1)
        e = np.minimum(self._edges, 513)
        bands = (cs[:, e[1:]] - cs[:, e[:-1]]) / np.maximum(e[1:] - e[:-1], 1)  # (T, F)
        return np.log(bands + 1e-4).astype(np.float16)

    def _pool(self, frames: np.ndarray) -> np.ndarray:
        m = frames.astype(np.float32).mean(axis=0)
        m = m - m.mean()  # loudness-invariant
        return m @ self._proj  # (dim,)

    def embed_audio(self, waves: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        if self.delay:
            time.sleep(self.delay)
        frames = [self._frames(w) for w in waves]
        if not frames:
            return np.zeros((0, self.dim), np.float32), []
        return _l2n(np.stack([self._pool(f) for f in frames])), frames

    def _word_vec(self, w: str) -> np.ndarray:
        if w in self._band_words:
            v = np.zeros(self.n_bands, np.float32)
            v[self._band_words[w]] = 1.0
            v -= v.mean()
            return 3.0 * _l2n(v @ self._proj)
        s = int.from_bytes(hashlib.sha1(f"{self.seed}:{w}".encode()).digest()[:8], "little")
        return np.random.default_rng(s).standard_normal(self.dim).astype(np.float32) / np.sqrt(self.dim)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            for w in _WORD.findall(str(t).lower()) or ["<empty>"]:
                out[i] += self._word_vec(w)
        return _l2n(out)

    def rerank(self, text: str, frames: list[np.ndarray]) -> np.ndarray | None:
        """Pair-wise stand-in: cosine of the text with the *max* over frames' projections."""
        q = self.embed_text([text])[0]
        out = np.empty(len(frames), np.float32)
        for i, f in enumerate(frames):
            f = f.astype(np.float32)
            out[i] = float(np.max(_l2n((f - f.mean(axis=1, keepdims=True)) @ self._proj) @ q))
        return out
