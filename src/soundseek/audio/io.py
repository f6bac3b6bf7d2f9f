"""Audio decoding, resampling, cropping/padding, segmentation and batching (METHODS.md §2).

Decoding goes through ``soundfile`` (libsndfile >= 1.1 reads wav/flac/ogg/mp3/aiff/...);
multi-channel audio is down-mixed to mono by the channel mean and resampled with a
polyphase filter (``scipy.signal.resample_poly``, rational ``up/down`` reduced by the gcd).

Every failure to decode raises :class:`AudioDecodeError` (a ``ValueError``) whose message
names the file and the reason, so a corpus checker can report it and move on.

Decoding is bounded by what will be used, whatever the header claims: files are opened once
and only if they are regular files (a FIFO named ``x.wav`` is refused, never blocked on);
sample rates outside ``[MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]`` are refused before any sample is
read (a 40 KB WAV declaring 2 Hz would otherwise resample to hours of audio); at most
``max_seconds`` (and never more than ``max_frames`` input frames, default
``MAX_DECODE_FRAMES``) are read, block by block and down-mixed per block, so peak memory is
about one mono copy of what is kept; an optional ``deadline`` stops a slow decode.

Masks returned here are *prefix* masks: the valid samples come first, the padding last.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import soundfile as sf
import torch

from ..safe_open import printable

__all__ = [
    "AudioDecodeError",
    "AudioInfo",
    "audio_info",
    "load_audio",
    "load_wave",
    "resample",
    "crop_or_pad",
    "segment",
    "batch_waves",
    "NONFINITE_POLICIES",
    "MIN_SAMPLE_RATE",
    "MAX_SAMPLE_RATE",
    "MAX_DECODE_FRAMES",
]

NONFINITE_POLICIES = ("error", "zero")
LONG_POLICIES = ("clamp", "error")
_MARGIN = 64  # input samples read past max_seconds (resample_poly's filter spans ~10 of them)
MIN_SAMPLE_RATE = 1000  # Hz; below this a header is absurd (and resampling it explodes)
MAX_SAMPLE_RATE = 768_000  # Hz; the highest rate real converters use
MAX_DECODE_FRAMES = 1 << 24  # input frames decoded per call at most (~5.8 min at 48 kHz, 64 MiB mono)
_BLOCK_VALUES = 1 << 20  # samples (frames x channels) decoded per block


class AudioDecodeError(ValueError):
    """A file could not be decoded into usable audio.

    Attributes:
        path: the offending file.
        reason: a short human-readable reason ("file not found", "no audio frames", ...).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Cannot decode audio file '{path}': {reason}")

    def __reduce__(self):  # keep picklable (worker processes)
        return (type(self), (str(self.path), self.reason))


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file (no samples decoded).

    ``frames`` may be an estimate for compressed formats (mp3).
    """

    duration: float  # seconds
    sample_rate: int
    channels: int
    format: str  # soundfile major format, e.g. "WAV", "FLAC", "OGG", "MP3"
    frames: int
    subtype: str = ""  # e.g. "PCM_16", "VORBIS"


@contextlib.contextmanager
def _open(path: Path) -> Iterator[sf.SoundFile]:
    """Open once, as a verified regular file (never blocks on a FIFO/device), and decode from
    that descriptor."""
    from ..safe_open import UnsafeFileError, open_regular

    try:
        fd, _ = open_regular(path)
    except UnsafeFileError as e:
        raise AudioDecodeError(path, e.reason) from None
    with os.fdopen(fd, "rb") as fobj:
        try:
            f = sf.SoundFile(fobj)
        except Exception as e:  # LibsndfileError, RuntimeError, TypeError, OSError ...
            msg = str(getattr(e, "error_string", "") or e).strip() or type(e).__name__
            if "pipe" in msg or "not a regular file" in msg:  # libsndfile's guess; the file is regular
                msg = "not audio in a format libsndfile recognises"
            raise AudioDecodeError(path, f"unreadable or unsupported format ({msg})") from e
        with f:
            yield f


def _check_header(path: Path, sr: int, channels: int) -> None:
    if channels <= 0 or sr <= 0:
        raise AudioDecodeError(path, f"invalid header (sample rate {sr}, channels {channels})")
    if not MIN_SAMPLE_RATE <= sr <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(path, f"implausible sample rate {sr} Hz (accepted: {MIN_SAMPLE_RATE}.."
                                     f"{MAX_SAMPLE_RATE} Hz)")


def audio_info(path: str | Path) -> AudioInfo:
    """Read the header of ``path`` cheaply.

    Raises:
        AudioDecodeError: missing, unreadable, or zero sample rate/channels.
    """
    path = Path(path)
    with _open(path) as f:
        sr, ch, frames = int(f.samplerate), int(f.channels), int(f.frames)
        fmt, subtype = str(f.format), str(f.subtype)
    _check_header(path, sr, ch)
    return AudioInfo(duration=frames / sr, sample_rate=sr, channels=ch, format=fmt, frames=frames,
                     subtype=subtype)


def resample(x: np.ndarray, sr_in: int, sr_out: int, deadline: float | None = None) -> np.ndarray:
    """Polyphase resampling along the last axis (``scipy.signal.resample_poly``).

    Args:
        x: (..., n) float array.
        sr_in, sr_out: positive integer sample rates (Hz).
        deadline: a ``time.monotonic()`` value: the signal is then resampled block by block
            (same result: each block sees the filter's context on both sides) and
            ``TimeoutError`` is raised between blocks once it has passed.
    Returns:
        (..., ceil(n * sr_out / sr_in)) array of the input float dtype (float32 for ints).
        ``x`` is returned unchanged (no copy) when the rates are equal.
    """
    sr_in, sr_out = int(sr_in), int(sr_out)
    if sr_in <= 0 or sr_out <= 0:
        raise ValueError(f"Sample rates must be positive, got sr_in={sr_in}, sr_out={sr_out}")
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    if sr_in == sr_out:
        return x
    g = math.gcd(sr_in, sr_out)
    up, down = sr_out // g, sr_in // g
    if x.shape[-1] == 0:
        return np.zeros(x.shape[:-1] + (0,), dtype=x.dtype)
    if deadline is not None:
        return _resample_blocks(x, up, down, deadline)
    y = resample_poly(x, up, down, axis=-1)
    return y.astype(x.dtype, copy=False)


def resample_poly(x: np.ndarray, up: int, down: int, **kw: Any) -> np.ndarray:
    """``scipy.signal.resample_poly``, imported on first use: importing ``scipy.signal`` costs
    about a second, and a text search never resamples."""
    from scipy.signal import resample_poly as poly

    return poly(x, up, down, **kw)


def _resample_blocks(x: np.ndarray, up: int, down: int, deadline: float, block: int = 1 << 19) -> np.ndarray:
    """``resample_poly(x, up, down)`` computed over blocks of about ``block`` input samples
    (multiples of ``down``, so each block's outputs fall on the full signal's output grid), each
    with ``pad`` input samples of context past both ends (more than the filter's half-length),
    checking ``deadline`` between blocks."""
    from scipy.signal import firwin

    if time.monotonic() > deadline:
        raise TimeoutError("resampling took too long")
    n = x.shape[-1]
    half = 10 * max(up, down)  # resample_poly's default filter (kaiser 5.0), designed once
    h = firwin(2 * half + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
    pad = -(-(half // up + 2) // down) * down
    step = max(down, block // down * down)
    out = np.empty(x.shape[:-1] + (-(-n * up // down),), dtype=x.dtype)
    for a in range(0, n, step):
        b = min(n, a + step)
        lo, hi = max(0, a - pad), min(n, b + pad)
        y = resample_poly(x[..., lo:hi], up, down, axis=-1, window=h.copy())
        first, last = a * up // down, -(-b * up // down)
        off = first - lo * up // down
        out[..., first:last] = y[..., off:off + last - first]
        if time.monotonic() > deadline:
            raise TimeoutError("resampling took too long")
    return out


def load_audio(
    path: str | Path,
    sample_rate: int,
    mono: bool = True,
    max_seconds: float | None = None,
    offset: float = 0.0,
    nonfinite: Literal["error", "zero"] = "error",
    max_frames: int | None = MAX_DECODE_FRAMES,
    too_long: Literal["clamp", "error"] = "clamp",
    deadline: float | None = None,
    max_channels: int | None = None,
) -> np.ndarray:
    """Decode ``path``, down-mix, resample to ``sample_rate``.

    Only ``[offset, offset + max_seconds)`` is read from the file (seek + bounded read), so
    keeping 10 s of a one-hour file decodes 10 s. The read is also capped at ``max_frames``
    input frames whatever ``max_seconds`` says; audio past the cap is dropped with a
    ``RuntimeWarning`` (``too_long="clamp"``) or refused (``too_long="error"``). A file cut
    short (truncated WAV/FLAC/OGG) is decoded as far as it is readable.

    Args:
        path: any format libsndfile reads (wav, flac, ogg/vorbis/opus, mp3, aiff, ...).
        sample_rate: target rate in Hz (e.g. 32000 for PANNs).
        mono: down-mix by the channel mean. If False the result keeps its channels.
        max_seconds: keep at most this many seconds (None: the whole file, up to ``max_frames``).
        offset: start reading at this time (seconds).
        nonfinite: what to do with NaN/Inf samples (possible in float wav files):
            ``"error"`` (default) raises AudioDecodeError; ``"zero"`` replaces them by 0
            and emits a ``RuntimeWarning`` naming the file.
        max_frames: hard cap on input frames decoded (None: no cap — only for trusted files).
        too_long: what to do when the audio to read exceeds ``max_frames``.
        deadline: a ``time.monotonic()`` value; decoding or resampling past it raises
            AudioDecodeError (checked between blocks of both).
        max_channels: refuse files declaring more channels (before any sample is decoded).
    Returns:
        (n,) float32 when ``mono`` else (channels, n) float32; n >= 1.
    Raises:
        AudioDecodeError: file missing / not a regular file / unreadable / corrupt / zero
            frames / implausible sample rate / offset past the end / longer than ``max_frames``
            (with ``too_long="error"``) / past ``deadline`` / non-finite samples (with
            ``nonfinite="error"``).
        ValueError: invalid arguments.
    """
    path = Path(path)
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"Invalid nonfinite policy {nonfinite!r}. Valid: {', '.join(NONFINITE_POLICIES)}")
    if too_long not in LONG_POLICIES:
        raise ValueError(f"Invalid too_long policy {too_long!r}. Valid: {', '.join(LONG_POLICIES)}")
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be positive or None, got {max_seconds!r}")
    if not offset >= 0:
        raise ValueError(f"offset must be >= 0, got {offset!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames!r}")
    with _open(path) as f:
        sr, channels, declared = int(f.samplerate), int(f.channels), int(f.frames)
        _check_header(path, sr, channels)
        if max_channels is not None and channels > max_channels:
            raise AudioDecodeError(path, f"{channels} channels (accepted: up to {max_channels})")
        start = int(round(offset * sr))
        # a few extra input samples so the resampling filter sees real context at the cut
        want = None if max_seconds is None else max(1, int(math.ceil(max_seconds * sr))) + _MARGIN
        if start > 0:
            if declared > 0 and start >= declared:
                raise AudioDecodeError(
                    path, f"offset {offset:g} s is past the end (duration {declared / sr:g} s)")
            try:
                f.seek(start)
            except Exception as e:
                msg = str(e).strip() or type(e).__name__
                raise AudioDecodeError(path, f"corrupt or truncated data ({msg})") from e
        x, clamped = _read_blocks(f, path, want, max_frames, mono, deadline)
    if clamped:
        total = f"{declared / sr:g} s" if declared > 0 else "unknown length"
        msg = (f"longer than the decoding limit ({max_frames / sr:g} s at {sr} Hz; file: {total})")
        if too_long == "error":
            raise AudioDecodeError(path, msg)
        warnings.warn(f"{printable(str(path))}: {msg}: only the first {max_frames / sr:g} s decoded", RuntimeWarning,
                      stacklevel=2)
    if x.shape[-1] == 0:
        reason = "no audio frames (empty file)" if start == 0 else f"no audio frames after offset {offset:g} s"
        raise AudioDecodeError(path, reason)
    finite = np.isfinite(x)
    if not finite.all():
        n_bad = int(x.size - finite.sum())
        if nonfinite == "error":
            raise AudioDecodeError(path, f"{n_bad} non-finite (NaN/Inf) samples")
        warnings.warn(f"{printable(str(path))}: replaced {n_bad} non-finite (NaN/Inf) samples by 0", RuntimeWarning,
                      stacklevel=2)
        x = np.where(finite, x, np.float32(0.0))
    if deadline is not None and time.monotonic() > deadline:
        raise AudioDecodeError(path, "decoding took too long")
    try:
        x = resample(x, sr, int(sample_rate), deadline=deadline)
    except TimeoutError:
        raise AudioDecodeError(path, "decoding took too long (resampling)") from None
    if max_seconds is not None:
        x = x[..., : max(1, int(math.ceil(max_seconds * sample_rate)))]
    return np.ascontiguousarray(x, dtype=np.float32)


def load_wave(path: str | Path, sample_rate: int, max_seconds: float | None = None, *,
              max_channels: int | None = None, seconds_limit: float | None = None) -> tuple[np.ndarray, dict]:
    """Decode ``path`` to mono float32 at ``sample_rate`` for indexing or a query; returns
    (wave (n,), header info ``{"duration", "sample_rate", "channels"}``).

    The info adds ``"clamped"`` (seconds kept) when the file is longer than the decoding limit
    (``MAX_DECODE_FRAMES``) and ``"truncated"`` (seconds readable) when its data ends before
    its header says (a cut-short file). ``max_channels`` refuses files with more channels from
    the header, ``seconds_limit`` bounds the wall time of decoding and resampling.
    """
    info = audio_info(path)
    deadline = None if seconds_limit is None else time.monotonic() + float(seconds_limit)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        wave = load_audio(path, sample_rate, mono=True, max_seconds=max_seconds, deadline=deadline,
                          max_channels=max_channels)
    for w in caught:
        if "decoding limit" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    meta = {"duration": info.duration, "sample_rate": info.sample_rate, "channels": info.channels}
    kept = wave.shape[-1] / sample_rate
    wanted = info.duration if max_seconds is None else min(info.duration, float(max_seconds))
    if any("decoding limit" in str(w.message) for w in caught):
        meta["clamped"] = kept  # longer than the decoding limit: start only
    elif kept + 1.0 < wanted and info.format != "MP3":  # (an mp3's frame count is an estimate)
        meta["truncated"] = kept
    return wave, meta


def _read_readable(f: sf.SoundFile, n: int, start: int, step: int = 4096) -> np.ndarray | None:
    """After a failed read of ``n`` frames from ``start``: re-read in small steps and return
    the frames decoded before the damage (None when the file cannot seek back)."""
    try:
        if not f.seekable():
            return None
        f.seek(start)
    except Exception:  # noqa: BLE001
        return None
    parts, got = [], 0
    while got < n:
        try:
            d = f.read(frames=min(step, n - got), dtype="float32", always_2d=True)
        except Exception:  # noqa: BLE001 - the damaged part starts here
            break
        if d.shape[0] == 0:
            break
        parts.append(d)
        got += d.shape[0]
    return np.concatenate(parts) if parts else None


def _read_blocks(f: sf.SoundFile, path: Path, want: int | None, max_frames: int | None, mono: bool,
                 deadline: float | None) -> tuple[np.ndarray, bool]:
    """Read up to ``min(want, max_frames)`` frames block by block (down-mixing each block when
    ``mono``), stopping early at the end of the readable data. Returns (x, clamped) where
    ``clamped`` says more audio was wanted than ``max_frames`` allowed."""
    ch = int(f.channels)
    limit = want if max_frames is None else (max_frames if want is None else min(want, max_frames))
    block = max(256, _BLOCK_VALUES // ch)
    parts: list[np.ndarray] = []
    # pages of an np.empty buffer cost memory only once written, so the cap can size it
    buf = np.empty(limit, np.float32) if (mono and limit is not None) else None
    got = 0
    origin = f.tell() if f.seekable() else 0
    while limit is None or got < limit:
        n = block if limit is None else min(block, limit - got)
        block_start = origin + got
        try:
            data = f.read(frames=n, dtype="float32", always_2d=True)  # (n, C)
        except Exception as e:
            data = _read_readable(f, n, block_start)
            if data is None or data.shape[0] == 0:
                if got > 0:  # truncated after some good data: keep what was readable
                    break
                msg = str(e).strip() or type(e).__name__
                raise AudioDecodeError(path, f"corrupt or truncated data ({msg})") from e
            n = data.shape[0] + 1  # the end of the readable data: stop after this block
        if data.shape[0] == 0:
            break
        if buf is not None:  # mono into one buffer: no second copy at the end
            np.mean(data, axis=1, dtype=np.float32, out=buf[got:got + data.shape[0]])
        else:
            parts.append(data.mean(axis=1, dtype=np.float32) if mono else np.ascontiguousarray(data.T))
        got += data.shape[0]
        if data.shape[0] < n:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise AudioDecodeError(path, "decoding took too long")
    clamped = False
    if max_frames is not None and got >= max_frames and (want is None or want > max_frames):
        try:  # is there more audio than the cap let us read?
            clamped = f.read(frames=1, dtype="float32", always_2d=True).shape[0] > 0
        except Exception:  # noqa: BLE001 - unreadable past the cap: nothing more to keep
            clamped = False
    if buf is not None:
        return buf[:got], clamped
    if not parts:
        return (np.zeros(0, np.float32) if mono else np.zeros((ch, 0), np.float32)), clamped
    return np.concatenate(parts, axis=-1).astype(np.float32, copy=False), clamped


def _is_torch(x: Any) -> bool:
    return isinstance(x, torch.Tensor)


def _randint(high: int, generator: Any) -> int:
    """Uniform integer in [0, high] from a torch.Generator, np.random.Generator or None."""
    if high <= 0:
        return 0
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, high + 1))
    if generator is None or isinstance(generator, torch.Generator):
        return int(torch.randint(0, high + 1, (1,), generator=generator).item())
    raise TypeError(f"generator must be a torch.Generator, np.random.Generator or None, got {type(generator)}")


def crop_or_pad(x: Any, length: int, random: bool = False, generator: Any = None) -> tuple[Any, Any]:
    """Crop or zero-pad the last axis of ``x`` to ``length``.

    Args:
        x: (..., n) numpy array or torch tensor.
        length: target length (>= 1).
        random: crop at a uniformly random offset (training); otherwise keep the start.
            Padding always goes at the end.
        generator: ``torch.Generator`` or ``np.random.Generator`` for the random offset.
    Returns:
        (x (..., length), mask (length,) bool) of the same library as ``x``; ``mask`` is True
        on real samples (a prefix) and broadcasts over the leading dims.
    """
    length = int(length)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    n = x.shape[-1]
    if n >= length:
        start = _randint(n - length, generator) if random else 0
        out = x[..., start:start + length]
        valid = length
    else:
        pad = length - n
        if _is_torch(x):
            out = torch.nn.functional.pad(x, (0, pad))
        else:
            out = np.pad(np.asarray(x), [(0, 0)] * (x.ndim - 1) + [(0, pad)])
        valid = n
    if _is_torch(x):
        mask = torch.arange(length, device=x.device) < valid
    else:
        mask = np.arange(length) < valid
    return out, mask


def segment(x: Any, sample_rate: int, seconds: float = 10.0, hop: float | None = None) -> tuple[Any, Any]:
    """Cut a long 1-D clip into fixed-length segments (METHODS.md §2, 10 s encoders).

    Args:
        x: (n,) numpy array or torch tensor.
        sample_rate: Hz.
        seconds: segment length.
        hop: hop between segment starts in seconds (default ``seconds``: no overlap).
    Returns:
        (segments (n_seg, seg_len), mask (n_seg, seg_len) bool). Segment ``i`` starts at
        ``i * hop``; the last one is zero-padded and every sample of ``x`` lies in some
        segment. A clip no longer than ``seconds`` gives one segment (padded if shorter).
    """
    if x.ndim != 1:
        raise ValueError(f"segment expects a 1-D signal (n,), got shape {tuple(x.shape)}")
    seg = int(round(seconds * sample_rate))
    step = seg if hop is None else int(round(hop * sample_rate))
    if seg < 1 or step < 1:
        raise ValueError(f"seconds and hop must give >= 1 sample, got seconds={seconds}, hop={hop}")
    if step > seg:
        raise ValueError(f"hop ({hop} s) must not exceed seconds ({seconds} s): samples would be skipped")
    n = x.shape[0]
    n_seg = 1 if n <= seg else 1 + int(math.ceil((n - seg) / step))
    starts = [i * step for i in range(n_seg)]
    if _is_torch(x):
        padded = torch.nn.functional.pad(x, (0, max(0, starts[-1] + seg - n)))
        segs = torch.stack([padded[s:s + seg] for s in starts])
        idx = torch.tensor(starts, device=x.device)[:, None] + torch.arange(seg, device=x.device)
    else:
        padded = np.pad(np.asarray(x), (0, max(0, starts[-1] + seg - n)))
        segs = np.stack([padded[s:s + seg] for s in starts])
        idx = np.asarray(starts)[:, None] + np.arange(seg)
    return segs, idx < n


def batch_waves(waves: Sequence[Any], max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-D waves of different lengths into a padded batch.

    Args:
        waves: B arrays/tensors of shape (n_i,).
        max_len: crop longer waves (keeping their start) to this many samples.
    Returns:
        (wave (B, N) float32, mask (B, N) bool) with N = min(max n_i, max_len), N >= 1;
        a zero-length wave gives an all-False row.
    """
    if len(waves) == 0:
        raise ValueError("batch_waves needs at least one wave")
    ts = [torch.as_tensor(np.asarray(w) if not _is_torch(w) else w, dtype=torch.float32) for w in waves]
    for i, t in enumerate(ts):
        if t.ndim != 1:
            raise ValueError(f"wave {i} must be 1-D (n,), got shape {tuple(t.shape)}")
    n = max(1, max(t.shape[0] for t in ts))
    if max_len is not None:
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        n = min(n, int(max_len))
    out = torch.zeros(len(ts), n, dtype=torch.float32)
    lengths = torch.zeros(len(ts), dtype=torch.long)
    for i, t in enumerate(ts):
        k = min(n, t.shape[0])
        out[i, :k] = t[:k]
        lengths[i] = k
    mask = torch.arange(n)[None, :] < lengths[:, None]  # (B, N)
    return out, mask
