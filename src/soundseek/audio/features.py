"""Mel filterbanks and log-mel spectrograms in torch (METHODS.md §2).

``mel_filterbank`` reproduces ``librosa.filters.mel`` (Slaney mel scale and Slaney area
normalisation by default, HTK scale and L-p row normalisation on request) without
depending on librosa. ``LogMel`` is a plain ``torch.stft`` + mel matmul + log module, so it
runs on any device, batches, and is differentiable w.r.t. the wave.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

__all__ = [
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "LogMel",
    "frame_mask",
    "num_frames",
    "panns_logmel",
    "aisfx_logmel",
    "LOG_MODES",
    "PAD_MODES",
]

LOG_MODES = ("db", "ln", "log10", "none")
PAD_MODES = ("reflect", "constant", "replicate", "circular")


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Hz -> mel, Slaney (linear below 1 kHz, log above) or HTK (2595 log10(1 + f/700))."""
    f = np.asanyarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mels)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    m = np.asanyarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filterbank(
    sr: int,
    n_fft: int,
    n_mels: int = 128,
    fmin: float = 0.0,
    fmax: float | None = None,
    norm: str | float | None = "slaney",
    htk: bool = False,
    dtype: type = np.float32,
) -> np.ndarray:
    """Triangular mel filterbank, identical to ``librosa.filters.mel``.

    Args:
        sr: sample rate (Hz); n_fft: FFT size; n_mels: number of bands.
        fmin, fmax: band edges in Hz (fmax defaults to sr / 2).
        norm: ``"slaney"`` (divide each triangle by its width in Hz: constant energy per
            band), ``None`` (peak 1), or a number p (unit L-p norm per row, librosa's
            ``util.normalize``; aisfx uses p = 1).
        htk: HTK mel scale instead of Slaney's.
    Returns:
        (n_mels, n_fft // 2 + 1) weights.
    """
    if sr <= 0 or n_fft <= 0 or n_mels <= 0:
        raise ValueError(f"sr, n_fft and n_mels must be positive, got {sr}, {n_fft}, {n_mels}")
    fmax = float(sr) / 2 if fmax is None else float(fmax)
    if not 0 <= fmin < fmax:
        raise ValueError(f"Need 0 <= fmin < fmax, got fmin={fmin}, fmax={fmax}")
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)  # (F,)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)  # (n_mels + 2, F)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper)).astype(dtype)  # (n_mels, F)
    if isinstance(norm, str):
        if norm != "slaney":
            raise ValueError(f"Invalid mel norm {norm!r}. Valid: 'slaney', None, or a number p (L-p norm)")
        enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
        weights *= enorm[:, None]
    elif norm is not None:
        p = float(norm)
        if p <= 0:
            raise ValueError(f"L-p mel norm needs p > 0, got {norm}")
        length = np.sum(np.abs(weights) ** p, axis=1, keepdims=True) ** (1.0 / p) if np.isfinite(p) \
            else np.max(np.abs(weights), axis=1, keepdims=True)
        tiny = np.finfo(weights.dtype).tiny
        weights = np.where(length < tiny, weights, weights / np.where(length < tiny, 1, length)).astype(dtype)
    if not np.all((mel_f[:-2] == 0) | (weights.max(axis=1) > 0)):
        warnings.warn("Empty mel filters detected: n_mels is too large for n_fft / the band", UserWarning,
                      stacklevel=2)
    return weights


class LogMel(nn.Module):
    """Wave (B, N) -> log-mel features (B, T, n_mels).

    ``T = 1 + N // hop_length`` with ``center=True`` (the wave is padded by n_fft // 2 on
    both sides with ``pad_mode``; a wave too short for reflection is zero-padded instead),
    else ``1 + (max(N, n_fft) - n_fft) // hop_length``.

    Args:
        sample_rate, n_fft, hop_length, win_length (default n_fft; a shorter periodic Hann
            window is centred in the n_fft frame, as in librosa/torch), n_mels, fmin, fmax.
        power: exponent of the magnitude (2: power, 1: magnitude).
        mel_norm, htk: see :func:`mel_filterbank`.
        log: ``"db"``: ``10 log10(max(x, amin))`` (PANNs, librosa ``power_to_db`` with ref 1);
            ``"ln"`` / ``"log10"``: ``log(max(x * log_scale + log_offset, amin))``;
            ``"none"``: the mel spectrogram itself.
        top_db: with ``"db"``, clamp each example at (its max - top_db).
    Buffers ``window`` (win_length,) and ``mel_fb`` (n_fft // 2 + 1, n_mels) are
    non-persistent: they follow ``.to()`` but stay out of state dicts.
    """

    def __init__(
        self,
        sample_rate: int = 32000,
        n_fft: int = 1024,
        hop_length: int = 320,
        win_length: int | None = None,
        n_mels: int = 64,
        fmin: float = 0.0,
        fmax: float | None = None,
        power: float = 2.0,
        center: bool = True,
        pad_mode: str = "reflect",
        mel_norm: str | float | None = "slaney",
        htk: bool = False,
        log: str = "db",
        amin: float = 1e-10,
        log_offset: float = 0.0,
        top_db: float | None = None,
        log_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if log not in LOG_MODES:
            raise ValueError(f"Invalid log mode {log!r}. Valid: {', '.join(LOG_MODES)}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"Invalid pad_mode {pad_mode!r}. Valid: {', '.join(PAD_MODES)}")
        win_length = n_fft if win_length is None else int(win_length)
        if not 0 < win_length <= n_fft:
            raise ValueError(f"Need 0 < win_length <= n_fft, got win_length={win_length}, n_fft={n_fft}")
        if hop_length <= 0 or power <= 0 or amin <= 0:
            raise ValueError(f"hop_length, power and amin must be positive, got {hop_length}, {power}, {amin}")
        if top_db is not None and top_db < 0:
            raise ValueError(f"top_db must be >= 0 or None, got {top_db}")
        self.sample_rate, self.n_fft, self.hop_length, self.win_length = int(sample_rate), int(n_fft), \
            int(hop_length), win_length
        self.n_mels, self.fmin, self.fmax = int(n_mels), float(fmin), fmax
        self.power, self.center, self.pad_mode = float(power), bool(center), pad_mode
        self.mel_norm, self.htk, self.log = mel_norm, bool(htk), log
        self.amin, self.log_offset, self.top_db, self.log_scale = float(amin), float(log_offset), top_db, \
            float(log_scale)
        fb = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm=mel_norm, htk=htk)  # (M, F)
        window = torch.hann_window(win_length, periodic=True, dtype=torch.float64).float()  # (W,)
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(np.ascontiguousarray(fb.T)), persistent=False)  # (F, M)

    def config(self) -> dict:
        """The options that determine the output (for cache keys)."""
        keys = ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels", "fmin", "fmax", "power",
                "center", "pad_mode", "mel_norm", "htk", "log", "amin", "log_offset", "top_db", "log_scale")
        return {k: getattr(self, k) for k in keys}

    def num_frames(self, n_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Frames produced for a wave of ``n_samples`` samples (0 for an empty wave)."""
        return num_frames(n_samples, self.hop_length, self.n_fft, self.center)

    def frame_mask(self, wave_mask: torch.Tensor) -> torch.Tensor:
        """Sample mask (B, N) -> frame mask (B, T); see :func:`frame_mask`."""
        return frame_mask(wave_mask, self.hop_length, self.n_fft, self.center)

    def _pad(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, n) -> the padded wave the frames are cut from (centre padding or one full frame)."""
        n = wave.shape[-1]
        if self.center:
            p = self.n_fft // 2
            mode = self.pad_mode
            if mode == "reflect" and n <= p:
                mode = "constant"  # too short to reflect
            return nn.functional.pad(wave[:, None, :], (p, p), mode=mode)[:, 0]
        if n < self.n_fft:
            return nn.functional.pad(wave, (0, self.n_fft - n))
        return wave

    def _stft_power(self, padded: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(padded, self.n_fft, self.hop_length, self.win_length,
                          window=self.window.to(padded.dtype), center=False, return_complex=True)  # (B, F, T)
        if self.power == 2.0:  # re^2 + im^2: ~2x faster than abs().pow(2) or view_as_real().pow(2).sum(-1)
            return torch.addcmul(spec.real.square(), spec.imag, spec.imag)
        return spec.abs().pow(self.power)

    def _power(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) -> |STFT|^power (B, F, T) (torch.stft's layout).

        With ``lengths`` (B,) valid samples per row (prefix), each row's first
        ``num_frames(lengths[b])`` frames are those of the row's valid samples alone: samples
        past a row's length are treated as zeros, and the frames whose window reaches the
        centre padding at the row's own end (reflect / replicate / circular padding, which
        the batch applies at the batch's end instead) are recomputed from that row's tail.
        Frames past a row's count are computed from padding and carry no meaning."""
        if wave.ndim == 1:
            wave = wave[None]
        if wave.ndim != 2:
            raise ValueError(f"LogMel expects a wave of shape (B, N), got {tuple(wave.shape)}")
        n = wave.shape[-1]
        if lengths is None:
            return self._stft_power(self._pad(wave))
        lengths = torch.as_tensor(lengths).reshape(-1).to("cpu", torch.long)
        if lengths.shape[0] != wave.shape[0]:
            raise ValueError(f"lengths must have one entry per row ({wave.shape[0]}), got {tuple(lengths.shape)}")
        if bool((lengths < 0).any()) or bool((lengths > n).any()):
            raise ValueError(f"lengths must lie in [0, {n}], got {lengths.tolist()}")
        short = lengths < n
        padded = self._pad(wave)
        if bool(short.any()):
            # samples past a row's end count as zeros, whatever the caller left there; only the
            # n_fft after the end are read by the row's valid frames, so only those are cleared
            if padded is wave:
                padded = wave.clone()
            off = self.n_fft // 2 if self.center else 0
            for b in torch.nonzero(short).flatten().tolist():
                nb = int(lengths[b])
                padded[b, off + nb: off + min(n, nb + self.n_fft)].zero_()
        out = self._stft_power(padded)
        if not self.center or self.pad_mode == "constant":
            return out  # zeros past a row's end are exactly what the row alone is padded with
        p, hop = self.n_fft // 2, self.hop_length
        for b in torch.nonzero(short).flatten().tolist():
            nb = int(lengths[b])
            t_b = int(num_frames(nb, hop, self.n_fft, True))
            if t_b == 0:
                continue
            # frames t >= t0 have a window reaching past the row's last sample
            t0 = max(0, (p + nb - self.n_fft) // hop + 1)
            start = t0 * hop - p  # first sample (row coordinates) of frame t0's window
            if nb <= p or self.pad_mode == "circular" or start < 0 or nb - start <= p:
                frames = self._stft_power(self._pad(wave[b:b + 1, :nb]))[..., :t_b]
                out[b, :, :t_b] = frames[0]
                continue
            tail = nn.functional.pad(wave[b:b + 1, None, start:nb], (0, p), mode=self.pad_mode)[:, 0]
            frames = self._stft_power(tail)[..., : t_b - t0]
            out[b, :, t0:t_b] = frames[0]
        return out

    def spectrogram(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) -> |STFT|^power (B, T, n_fft // 2 + 1); ``lengths``: see :meth:`forward`."""
        return self._power(wave, lengths).transpose(1, 2)

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """wave (B, N) float -> (B, T, n_mels) (contiguous).

        ``lengths`` (B,) int, optional: valid samples per row (padding last). Row b's first
        ``num_frames(lengths[b])`` frames then equal those of ``wave[b, :lengths[b]]`` computed
        alone (STFT edges and the ``top_db`` peak follow the row's own length); later frames
        are computed from padding and must be masked by the caller (:meth:`frame_mask`)."""
        mel = self.mel_fb.to(wave.dtype).T @ self._power(wave, lengths)  # (M, F) @ (B, F, T) -> (B, M, T)
        if self.log == "db":
            mel = 10.0 * torch.log10(mel.clamp(min=self.amin))
            if self.top_db is not None:
                if lengths is None:
                    peak = mel.amax(dim=(1, 2), keepdim=True)
                else:
                    t_valid = num_frames(torch.as_tensor(lengths).reshape(-1).to(mel.device, torch.long),
                                         self.hop_length, self.n_fft, self.center)
                    valid = torch.arange(mel.shape[-1], device=mel.device)[None, None, :] < t_valid[:, None, None]
                    peak = mel.masked_fill(~valid, float("-inf")).amax(dim=(1, 2), keepdim=True)
                mel = torch.maximum(mel, peak - self.top_db)
        elif self.log != "none":
            x = (mel * self.log_scale + self.log_offset).clamp(min=self.amin)
            mel = torch.log(x) if self.log == "ln" else torch.log10(x)
        return mel.transpose(1, 2).contiguous()  # (B, T, M)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())


def num_frames(n_samples: int | torch.Tensor, hop_length: int, n_fft: int, center: bool = True
               ) -> int | torch.Tensor:
    """STFT frames for ``n_samples`` samples: ``1 + n // hop`` when centred, else
    ``1 + max(0, n - n_fft) // hop`` (short waves are zero-padded to one frame); 0 if n == 0."""
    if isinstance(n_samples, torch.Tensor):
        if center:
            t = 1 + torch.div(n_samples, hop_length, rounding_mode="floor")
        else:
            t = 1 + torch.div((n_samples - n_fft).clamp(min=0), hop_length, rounding_mode="floor")
        return torch.where(n_samples > 0, t, torch.zeros_like(t))
    n = int(n_samples)
    if n <= 0:
        return 0
    return 1 + n // hop_length if center else 1 + max(0, n - n_fft) // hop_length


def frame_mask(wave_mask: torch.Tensor, hop_length: int = 320, n_fft: int = 1024, center: bool = True
               ) -> torch.Tensor:
    """Sample mask (B, N) -> frame mask (B, T) (defaults: the PANNs front end).

    Frame t of example b is valid iff the STFT of the unpadded example (its first
    ``wave_mask[b].sum()`` samples; masks are prefixes as made by ``crop_or_pad`` and
    ``batch_waves``) has a frame t. With ``center=True`` that is ``t * hop_length <= n_valid``:
    frames centred on padding are masked. An all-False row gives no valid frame.
    """
    n_valid = wave_mask.long().sum(-1)  # (B,)
    t_total = num_frames(wave_mask.shape[-1], hop_length, n_fft, center)
    t_valid = num_frames(n_valid, hop_length, n_fft, center)  # (B,)
    return torch.arange(t_total, device=wave_mask.device)[None, :] < t_valid[:, None]  # (B, T)


def panns_logmel() -> LogMel:
    """The PANNs front end (METHODS.md §2; torchlibrosa Spectrogram + LogmelFilterBank):
    32 kHz, n_fft 1024, hop 320, Hann 1024, 64 Slaney mel bands 50-14000 Hz, power 2,
    centred reflect padding, ``10 log10(max(x, 1e-10))``."""
    return LogMel(sample_rate=32000, n_fft=1024, hop_length=320, win_length=1024, n_mels=64, fmin=50.0,
                  fmax=14000.0, power=2.0, center=True, pad_mode="reflect", mel_norm="slaney", htk=False,
                  log="db", amin=1e-10, top_db=None)


def aisfx_logmel() -> LogMel:
    """The aisfx (ISMIR 2022) librosa front end: 44.1 kHz, n_fft = window 2048, hop 1024,
    96 HTK mel bands 0-22050 Hz with L1-normalised rows, power 2, centred constant (zero)
    padding (librosa >= 0.10's default), ``log10(10000 x + 1)``. aisfx additionally
    peak-normalises the wave before and min-max scales the features after (encoder's job)."""
    return LogMel(sample_rate=44100, n_fft=2048, hop_length=1024, win_length=2048, n_mels=96, fmin=0.0,
                  fmax=22050.0, power=2.0, center=True, pad_mode="constant", mel_norm=1.0, htk=True,
                  log="log10", amin=1e-10, log_offset=1.0, log_scale=10000.0)
