"""A small log-mel CNN trainable from scratch (METHODS §3, last audio option).

``n_blocks`` blocks of (3x3 conv-BN-ReLU) x 2 with doubling channels, 2x2 average pooling
after each block (time and frequency), mean over the remaining frequency bins, then a linear
layer to ``out_dim``. Frame-level output ``(B, T // 2**n_blocks, out_dim)`` + mask, the same
interface as the pretrained encoders; the PANNs log-mel front end by default (32 kHz, 64 mels).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from soundseek.audio.features import LogMel, panns_logmel
from soundseek.encoders.base import AudioEncoder, length_mask, valid_counts, weights_digest, zero_past_end


class SmallCNN(AudioEncoder):
    """Args:
        channels: width of the first block (doubled per block).
        n_blocks: number of conv blocks (time is downsampled by 2 per block).
        out_dim: frame feature width D.
        frontend: a :class:`LogMel` (default :func:`panns_logmel`); its sample rate is ours.
        dropout: dropout after each block (training only).
    """

    computation = 2

    def __init__(self, channels: int = 32, n_blocks: int = 4, out_dim: int = 256,
                 frontend: LogMel | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        if n_blocks < 1 or channels < 1 or out_dim < 1:
            raise ValueError(f"channels, n_blocks and out_dim must be >= 1, got {channels}, {n_blocks}, {out_dim}")
        self.frontend = frontend if frontend is not None else panns_logmel()
        self.sample_rate = self.frontend.sample_rate
        self.out_dim = int(out_dim)
        self.channels, self.n_blocks, self.dropout = int(channels), int(n_blocks), float(dropout)
        if self.frontend.n_mels < 2 ** n_blocks:
            raise ValueError(f"n_blocks={n_blocks} pools the {self.frontend.n_mels} mel bins below 1; use fewer blocks")
        self.bn0 = nn.BatchNorm1d(self.frontend.n_mels)
        layers, cin = [], 1
        for i in range(n_blocks):
            cout = channels * 2 ** i
            layers.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            ))
            cin = cout
        self.blocks = nn.ModuleList(layers)
        self.proj = nn.Linear(cin, out_dim)

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """wave (B, N), wave_mask (B, N) bool prefix mask -> frames (B, T', out_dim), frame_mask (B, T') bool.

        In eval mode a clip's valid frames do not depend on its batch (STFT edges at the clip's
        own end, the step after each row's end zeroed before every convolution); a clip with
        fewer than ``2 ** n_blocks`` mel frames is padded with zero mel frames to that many,
        alone as in a batch. (In training, BatchNorm's batch statistics still see padding.)"""
        if wave.ndim != 2:
            raise ValueError(f"SmallCNN expects a wave of shape (B, N), got {tuple(wave.shape)}")
        n_valid = valid_counts(wave, wave_mask)
        exact = bool((n_valid < wave.shape[1]).any())
        mel = self.frontend(wave, n_valid if exact else None)  # (B, T, M)
        t_valid = self.frontend.num_frames(n_valid.cpu())  # (B,) mel frames of each clip alone
        min_t = 2 ** self.n_blocks
        short = min_t - mel.shape[1]
        if short > 0:  # too short for the poolings: pad with zero mel frames
            mel = F.pad(mel, (0, 0, 0, short))
        padded = (t_valid > 0) & (t_valid < min_t)
        if exact and bool(padded.any()):  # those frames are zeros alone, padding in a batch
            keep = length_mask(torch.where(padded, t_valid, torch.full_like(t_valid, mel.shape[1])), mel.shape[1])
            mel = mel * keep.to(mel.device)[..., None]
        lengths = torch.where(t_valid > 0, t_valid.clamp(min=min_t), t_valid)
        exact = exact or bool((lengths < mel.shape[1]).any())
        x = self.bn0(mel.transpose(1, 2)).transpose(1, 2)[:, None]  # (B, 1, T, M)
        for block in self.blocks:
            conv1, bn1, act1, conv2, bn2, act2 = block
            x = act1(bn1(conv1(zero_past_end(x, lengths if exact else None))))
            x = act2(bn2(conv2(zero_past_end(x, lengths if exact else None))))
            x = F.avg_pool2d(x, kernel_size=2)
            x = F.dropout(x, p=self.dropout, training=self.training)
            lengths = torch.div(lengths, 2, rounding_mode="floor")
        frames = self.proj(x.mean(dim=3).transpose(1, 2))  # (B, T', D)
        return frames, length_mask(lengths.to(frames.device), frames.shape[1])

    def config(self) -> dict:
        return {**super().config(), "channels": self.channels, "n_blocks": self.n_blocks,
                "frontend": self.frontend.config(), "weights": weights_digest(self)}
