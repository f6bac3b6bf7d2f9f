"""SpecAugment: time and frequency masking on (B, T, F) features (METHODS.md §2).

Works on log-mel spectrograms and equally on frame embeddings (B, T, D) from a frozen
encoder (the m-LTM recipe applies it to cached ResNet38 frames). Reference: Park et al.,
"SpecAugment", Interspeech 2019; PANNs ``SpecAugmentation`` (time width 64, 2 stripes;
freq width 8, 2 stripes) gives the defaults.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["SpecAugment", "MASK_VALUES", "WaveAugment", "mixup_waves"]

MASK_VALUES = ("zero", "mean")


def _uniform_int(high: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Integers uniform in [0, high] (elementwise, high >= 0) on high's device."""
    u = torch.rand(high.shape, generator=generator, device="cpu").to(high.device)
    return torch.minimum((u * (high + 1).to(u.dtype)).floor().long(), high)


class SpecAugment(nn.Module):
    """Random time stripes and frequency stripes set to a fill value.

    Args:
        time_masks: number of time stripes per example; time_width: max stripe width (frames),
            widths are uniform in [0, time_width] and stripes lie inside the valid frames.
        freq_masks, freq_width: the same along the feature axis.
        p: probability of augmenting each example.
        mask_value: ``"zero"`` or ``"mean"`` (the example's mean over its valid frames).
    Forward:
        x (B, T, F), mask (B, T) bool or None (True = real frame), generator -> (B, T, F).
        Padded frames are left unchanged. Identity in eval mode. Deterministic given a
        ``torch.Generator`` (draws are made on the CPU, so CPU and GPU runs agree).
    """

    def __init__(self, time_masks: int = 2, time_width: int = 64, freq_masks: int = 2, freq_width: int = 8,
                 p: float = 1.0, mask_value: str = "zero") -> None:
        super().__init__()
        if min(time_masks, time_width, freq_masks, freq_width) < 0:
            raise ValueError("time_masks, time_width, freq_masks and freq_width must be >= 0, got "
                             f"{time_masks}, {time_width}, {freq_masks}, {freq_width}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if mask_value not in MASK_VALUES:
            raise ValueError(f"Invalid mask_value {mask_value!r}. Valid: {', '.join(MASK_VALUES)}")
        self.time_masks, self.time_width = int(time_masks), int(time_width)
        self.freq_masks, self.freq_width = int(freq_masks), int(freq_width)
        self.p, self.mask_value = float(p), mask_value

    def draw(self, lengths: torch.Tensor, n_feat: int, generator: torch.Generator | None = None
             ) -> dict[str, torch.Tensor]:
        """Random stripes for a batch with ``lengths`` (B,) valid frames and ``n_feat`` features.

        Returns dict with ``t_start, t_width`` (B, time_masks), ``f_start, f_width``
        (B, freq_masks) and ``apply`` (B,) bool.
        """
        b = lengths.shape[0]
        lengths = lengths.long().cpu()
        tw = _uniform_int(torch.minimum(torch.full((b, self.time_masks), self.time_width), lengths[:, None]),
                          generator)
        ts = _uniform_int(lengths[:, None] - tw, generator)
        fw = _uniform_int(torch.full((b, self.freq_masks), min(self.freq_width, n_feat)), generator)
        fs = _uniform_int(n_feat - fw, generator)
        apply = torch.rand(b, generator=generator) < self.p
        return {"t_start": ts, "t_width": tw, "f_start": fs, "f_width": fw, "apply": apply}

    def apply_draw(self, x: torch.Tensor, draw: dict[str, torch.Tensor], mask: torch.Tensor | None = None
                   ) -> torch.Tensor:
        """Apply given stripes to x (B, T, F) (vectorised)."""
        b, t, f = x.shape
        dev = x.device
        d = {k: v.to(dev) for k, v in draw.items()}
        ar_t = torch.arange(t, device=dev)[None, None, :]  # (1, 1, T)
        ar_f = torch.arange(f, device=dev)[None, None, :]
        hit_t = ((ar_t >= d["t_start"][..., None]) & (ar_t < (d["t_start"] + d["t_width"])[..., None])).any(1)
        hit_f = ((ar_f >= d["f_start"][..., None]) & (ar_f < (d["f_start"] + d["f_width"])[..., None])).any(1)
        hit = (hit_t[:, :, None] | hit_f[:, None, :]) & d["apply"][:, None, None]  # (B, T, F)
        if mask is not None:
            hit = hit & mask[:, :, None].to(dev)
        if self.mask_value == "zero":
            fill = torch.zeros((), dtype=x.dtype, device=dev)
        else:
            m = torch.ones(b, t, dtype=x.dtype, device=dev) if mask is None else mask.to(x.dtype)
            fill = ((x * m[..., None]).sum((1, 2)) / (m.sum(1) * f).clamp(min=1))[:, None, None]  # (B, 1, 1)
        return torch.where(hit, fill, x)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.ndim != 3:
            raise ValueError(f"SpecAugment expects (B, T, F), got shape {tuple(x.shape)}")
        if mask is not None and mask.shape != x.shape[:2]:
            raise ValueError(f"mask shape {tuple(mask.shape)} does not match features {tuple(x.shape[:2])}")
        lengths = mask.long().sum(1) if mask is not None else torch.full((x.shape[0],), x.shape[1])
        return self.apply_draw(x, self.draw(lengths, x.shape[2], generator), mask)

    def extra_repr(self) -> str:
        return (f"time_masks={self.time_masks}, time_width={self.time_width}, freq_masks={self.freq_masks}, "
                f"freq_width={self.freq_width}, p={self.p}, mask_value={self.mask_value!r}")


class WaveAugment:
    """Waveform augmentation of one training clip (numpy, in a DataLoader worker).

    Args:
        gain_db: random gain, uniform in [-gain_db, +gain_db] dB (0: off).
        shift: random circular time shift of up to this fraction of the clip (0: off).
    Call: ``aug(x (n,) float32, rng: np.random.Generator) -> (n,) float32``.
    """

    def __init__(self, gain_db: float = 0.0, shift: float = 0.0) -> None:
        if gain_db < 0 or not 0.0 <= shift <= 1.0:
            raise ValueError(f"gain_db must be >= 0 and shift in [0, 1], got {gain_db}, {shift}")
        self.gain_db, self.shift = float(gain_db), float(shift)

    @property
    def active(self) -> bool:
        return self.gain_db > 0 or self.shift > 0

    def __call__(self, x, rng):
        import numpy as np

        if self.gain_db > 0:
            x = x * np.float32(10 ** (rng.uniform(-self.gain_db, self.gain_db) / 20))
        if self.shift > 0 and x.shape[-1] > 1:
            k = int(rng.integers(-int(self.shift * x.shape[-1]), int(self.shift * x.shape[-1]) + 1))
            x = np.roll(x, k, axis=-1)
        return x.astype(np.float32, copy=False)


def mixup_waves(wave: torch.Tensor, mask: torch.Tensor, p: float, alpha: float = 0.4,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each clip of a (B, N) batch, with probability ``p``, with another clip of the batch:
    ``x_i <- lam x_i + (1 - lam) x_j``, ``lam = max(l, 1 - l)``, ``l ~ Beta(alpha, alpha)``, so
    the clip that its caption describes stays dominant. Masks are OR-ed. Returns (wave, mask)."""
    b = wave.shape[0]
    if p <= 0 or b < 2:
        return wave, mask
    apply = torch.rand(b, generator=generator) < p
    partner = (torch.arange(b) + torch.randint(1, b, (b,), generator=generator)) % b  # never itself
    beta = torch.distributions.Beta(torch.tensor(alpha), torch.tensor(alpha))
    lam = beta.sample((b,))
    lam = torch.maximum(lam, 1 - lam).to(wave.dtype)
    lam = torch.where(apply, lam, torch.ones_like(lam)).to(wave.device)
    partner = partner.to(wave.device)
    mixed = lam[:, None] * wave + (1 - lam[:, None]) * wave[partner]
    return mixed, mask | (mask[partner] & apply.to(mask.device)[:, None])
