"""The audio-encoder interface shared by PANNs, aisfx and the small CNN (METHODS §3).

An audio encoder is an ``nn.Module`` with

* ``sample_rate: int`` — the rate its input waves must have,
* ``out_dim: int`` — the width D of its frame features,
* ``config() -> dict`` — JSON-able description of weights + options (feature-cache key),
* ``forward(wave (B, N), wave_mask (B, N) bool | None) -> (frames (B, T, D), frame_mask (B, T))``.

Masks are prefix masks (valid samples first, padding last), as produced by
``soundseek.audio.io.batch_waves``.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from soundseek.pooling.basic import masked_max, masked_mean


COMPUTATION_CHANGES = {
    2: "a clip's embedding no longer depends on the other clips batched with it",
}


def computation_change(version: int) -> str:
    """What changed in the outputs at encoder computation ``version``."""
    return COMPUTATION_CHANGES.get(int(version), f"computation version {version}")


class AudioEncoder(nn.Module):
    """Base class: subclasses set ``sample_rate``/``out_dim`` and implement ``forward``.

    ``computation`` numbers the way ``forward`` computes its output; an encoder bumps it when
    the same weights and options start giving different vectors, so that feature caches and
    indexes keyed by ``config()`` are recomputed. Version 1 is left out of ``config()`` (the
    keys written before the field existed stay valid); version 2 is the valid-length-exact
    computation of padded batches (a clip's frames do not depend on its batch).
    """

    sample_rate: int = 0
    out_dim: int = 0
    computation: int = 1

    def config(self) -> dict:
        """Identifies the encoder for cache keys; subclasses add their options/weights."""
        cfg = {"class": type(self).__name__, "sample_rate": self.sample_rate, "out_dim": self.out_dim}
        if self.computation > 1:
            cfg["computation"] = self.computation
        return cfg

    def previous_configs(self) -> list[dict]:
        """``config()`` as earlier computation versions of this encoder wrote it (oldest
        first): a cache or index keyed by one of these holds vectors this code no longer
        produces and must be rebuilt."""
        cfg = self.config()
        out = []
        for v in range(1, self.computation):
            old = {k: x for k, x in cfg.items() if k != "computation"}
            if v > 1:
                old["computation"] = v
            out.append(old)
        return out


class ConvBNPair(nn.Module):
    """Two 3x3 conv-BN-ReLU layers, ``cin -> cout -> cout``, without pooling: the body of the
    PANNs ``ConvBlock`` and of the aisfx (Cnn_9layers) block. The parameter names (``conv1``,
    ``bn1``, ``conv2``, ``bn2``) are those of the official checkpoints; subclasses add the
    pooling in ``forward``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.bn2 = nn.BatchNorm2d(cout)

    def convs(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, cin, T, F) -> (B, cout, T, F); ``lengths`` (B,): valid time steps per row (see
        :func:`zero_past_end`)."""
        x = F.relu(self.bn1(self.conv1(zero_past_end(x, lengths))))
        return F.relu(self.bn2(self.conv2(zero_past_end(x, lengths))))


def zero_past_end(x: torch.Tensor, lengths: torch.Tensor | None, dim: int = 2) -> torch.Tensor:
    """Zero time step ``lengths[b]`` of each row ``b`` whose length is shorter than the batch.

    Makes a batched 3-wide, zero-padded convolution along ``dim`` equal, on each row's first
    ``lengths[b]`` steps, to the convolution of that row alone: alone, the step after the
    row's end is the convolution's own zero padding; in a batch it holds padding activations
    (the log-mel of silence, BatchNorm shifts, ...). Only that one step is read by the valid
    outputs of a kernel of width 3, so it is the only one cleared; later steps keep whatever
    they hold and must be masked downstream. In place when autograd does not need ``x``.

    Args:
        x: (B, C, T, ...) activations; lengths: (B,) int or None (nothing to do).
    """
    if lengths is None:
        return x
    t = x.shape[dim]
    lengths = lengths.to(x.device)
    rows = torch.nonzero(lengths < t).flatten()
    if rows.numel() == 0:
        return x
    cols = lengths[rows]
    if torch.is_grad_enabled() and x.requires_grad:
        hit = torch.zeros(x.shape[0], t, dtype=torch.bool, device=x.device)
        hit[rows, cols] = True
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        shape[dim] = t
        return x.masked_fill(hit.view(shape), 0.0)
    for b, c in zip(rows.tolist(), cols.tolist()):  # strided views: far cheaper than index_put_
        x[b].select(dim - 1, c).zero_()
    return x


def short_rows_alone(mel: torch.Tensor, wave: torch.Tensor, n_valid: torch.Tensor, min_samples: int,
                     features: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Encoders that zero-pad a clip shorter than ``min_samples`` before their front end: give
    each such row of a batch the frames ``features`` computes for it alone (its valid samples
    zero-padded to ``min_samples``), in place of ``mel[b, :frames]``. Returns ``mel``.

    Args:
        mel: (B, T, M) batched features; wave: (B, N); n_valid: (B,) valid samples per row;
        features: (1, min_samples) wave -> (1, T_min, M) with T_min <= T.
    """
    for b in torch.nonzero((n_valid > 0) & (n_valid < min_samples)).flatten().tolist():
        nv = int(n_valid[b])
        one = features(F.pad(wave[b:b + 1, :nv], (0, min_samples - nv)))[0]
        mel[b, : one.shape[0]] = one
    return mel


def valid_counts(wave: torch.Tensor, wave_mask: torch.Tensor | None) -> torch.Tensor:
    """(B,) long: valid samples per row of a (B, N) batch with a prefix mask (N when no mask)."""
    if wave_mask is None:
        return torch.full((wave.shape[0],), wave.shape[-1], dtype=torch.long, device=wave.device)
    return wave_mask.long().sum(-1)


def length_mask(lengths: torch.Tensor, t: int) -> torch.Tensor:
    """(B,) lengths -> (B, t) bool prefix mask."""
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file (identifies the weights in ``config()``)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_digest(module: nn.Module) -> str:
    """sha256 over a module's state dict (names, shapes, values) — for in-memory weights."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(str(tuple(v.shape)).encode())
        h.update(v.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def pad_to_min(wave: torch.Tensor, wave_mask: torch.Tensor | None, min_samples: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad (B, N) waves on the right to at least ``min_samples`` (padding masked out), so
    that an encoder's poolings leave at least one frame. Returns (wave, mask (B, N') bool)."""
    if wave_mask is None:
        wave_mask = torch.ones_like(wave, dtype=torch.bool)
    short = min_samples - wave.shape[-1]
    if short > 0:
        wave = F.pad(wave, (0, short))
        wave_mask = F.pad(wave_mask, (0, short), value=False)
    return wave, wave_mask


def pool_mask(mask: torch.Tensor, factors: Sequence[int]) -> torch.Tensor:
    """Follow a prefix frame mask through successive floor-mode time poolings.

    A pooled frame is valid when *all* the frames it covers are valid, so a padded example gets
    exactly the frames it would get alone (``floor`` per stage, like ``avg_pool2d``); a row with
    any valid input frame keeps at least its first pooled frame (very short clips).

    Args:
        mask: (B, T) bool.
        factors: pooling factors along time, in order (1 = no pooling).
    Returns:
        (B, T') bool.
    """
    m = mask.to(torch.float32)[:, None, :]  # (B, 1, T)
    for f in factors:
        if f > 1:
            m = -F.max_pool1d(-m, kernel_size=f, stride=f)  # min pooling
    out = m[:, 0, :] > 0
    if out.shape[1] > 0:
        out[:, 0] |= mask.any(dim=1)
    return out


def masked_mean_max(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """PANNs clip pooling ``max_t + mean_t`` restricted to valid frames.

    Args:
        frames: (B, T, D); mask: (B, T) bool.
    Returns:
        (B, D); rows without a valid frame give zeros.
    """
    return masked_mean(frames, mask) + masked_max(frames, mask)


def valid_lengths(wave: torch.Tensor, wave_mask: torch.Tensor | None) -> list[int]:
    """Valid samples per row of a (B, N) batch with a prefix mask (all N when no mask)."""
    return [wave.shape[1]] * wave.shape[0] if wave_mask is None else wave_mask.long().sum(-1).tolist()


def encode_in_segments(encode_window: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
                       wave: torch.Tensor, n_valid: list[int], sample_rate: int, max_samples: int,
                       out_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Long clips for encoders limited to ``max_samples`` (METHODS §2): cut each clip's valid
    samples into windows, encode them, and concatenate the valid frames in time order.
    ``encode_window(segments (S, max_samples), mask)`` returns (frames (S, T, D), mask (S, T))."""
    from soundseek.audio.io import segment

    seqs = []
    for i, nv in enumerate(n_valid):
        segs, smask = segment(wave[i, : max(int(nv), 1)], sample_rate, seconds=max_samples / sample_rate)
        if nv == 0:
            smask = torch.zeros_like(smask)
        f, m = encode_window(segs, smask)
        seqs.append(f[m])
    t = max(1, max(s.shape[0] for s in seqs))
    frames = wave.new_zeros((len(seqs), t, out_dim))
    mask = torch.zeros(len(seqs), t, dtype=torch.bool, device=wave.device)
    for i, s in enumerate(seqs):
        frames[i, : s.shape[0]] = s
        mask[i, : s.shape[0]] = True
    return frames, mask

