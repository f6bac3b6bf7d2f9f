"""PANNs CNN14 and ResNet38 audio encoders (METHODS §3).

Reference: Q. Kong, Y. Cao, T. Iqbal, Y. Wang, W. Wang, M. D. Plumbley, "PANNs: Large-Scale
Pretrained Audio Neural Networks for Audio Pattern Recognition", IEEE/ACM TASLP 2020;
architecture and parameter names follow the official ``audioset_tagging_cnn/pytorch/models.py``
so that ``Cnn14_mAP=0.431.pth`` / ``ResNet38_mAP=0.434.pth`` (state dict under ``"model"``)
load without renaming. The code here is our own.

Front end: our torch :func:`soundseek.audio.features.panns_logmel` (METHODS §2: 32 kHz,
n_fft 1024, hop 320, 64 mels 50-14000 Hz, ``10 log10(max(x, 1e-10))``) replaces torchlibrosa.
The checkpoint's torchlibrosa buffers (:data:`TORCHLIBROSA_KEYS`) are accepted and *checked*
against the same configuration (Hann-windowed DFT rows, Slaney mel matrix): a mismatch is an
error (strict) or a warning (``strict=False``); ``check_frontend=False`` ignores them.

Output: frame features before the global pooling — after the last conv block and the mean
over frequency — ``(B, T', 2048)`` with ``T' = floor(T / 32)``, plus the frame mask following
the same floor poolings; :meth:`clip` gives the official clip head (``max_t + mean_t``, fc1).
"""
from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundseek.audio.features import mel_filterbank, panns_logmel
from soundseek.encoders.base import (AudioEncoder, ConvBNPair, file_digest, length_mask, masked_mean_max, pad_to_min,
                                     short_rows_alone, valid_counts, zero_past_end)
from soundseek.encoders.checkpoint import CheckpointError, load_into, load_state_dict, strip_prefix

TORCHLIBROSA_KEYS = (
    "spectrogram_extractor.stft.conv_real.weight",  # (n_fft/2+1, 1, n_fft) window * cos
    "spectrogram_extractor.stft.conv_imag.weight",  # (n_fft/2+1, 1, n_fft) window * -sin
    "logmel_extractor.melW",  # (n_fft/2+1, n_mels) librosa slaney mel filters, transposed
)
PANNS_FRONTEND = dict(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0, fmax=14000.0)


def torchlibrosa_buffers(n_fft: int = 1024, n_mels: int = 64, sample_rate: int = 32000,
                         fmin: float = 50.0, fmax: float = 14000.0) -> dict[str, torch.Tensor]:
    """The torchlibrosa front-end tensors of an official checkpoint for this configuration.

    STFT rows: periodic Hann window times the DFT basis ``exp(-2 pi i k n / N)``; mel matrix:
    Slaney-scale, Slaney-normalised triangles (librosa ``filters.mel`` defaults), transposed.
    """
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
    ang = 2 * np.pi * np.outer(k, n) / n_fft  # (K, N)
    real = (np.cos(ang) * win)[:, None, :]
    imag = (-np.sin(ang) * win)[:, None, :]
    mel = mel_filterbank(sample_rate, n_fft, n_mels, fmin, fmax, norm="slaney", htk=False)  # (n_mels, K)
    return {
        TORCHLIBROSA_KEYS[0]: torch.tensor(real, dtype=torch.float32),
        TORCHLIBROSA_KEYS[1]: torch.tensor(imag, dtype=torch.float32),
        TORCHLIBROSA_KEYS[2]: torch.tensor(mel.T, dtype=torch.float32),
    }


class ConvBlock(ConvBNPair):
    """Two 3x3 conv-BN-ReLU layers then 2-D pooling (official ``ConvBlock``)."""

    def forward(self, x: torch.Tensor, pool: tuple[int, int] = (2, 2), lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        x = self.convs(x, lengths)
        return F.avg_pool2d(x, kernel_size=pool) if pool != (1, 1) else x


class BasicBlock(nn.Module):
    """ResNet basic block with avg-pool downsampling (official ``_ResnetBasicBlock``)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride == 2:
            self.downsample = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        elif cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths`` (B,): valid time steps of the block's *output* (see ``zero_past_end``)."""
        out = F.avg_pool2d(x, 2) if self.stride == 2 else x
        out = F.relu(self.bn1(self.conv1(zero_past_end(out, lengths))))
        out = F.dropout(out, p=0.1, training=self.training)
        out = self.bn2(self.conv2(zero_past_end(out, lengths)))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(out + identity)


class ResNetBody(nn.Module):
    """layer1..layer4 with 64/128/256/512 channels (official ``_ResNet``)."""

    def __init__(self, layers: tuple[int, int, int, int]) -> None:
        super().__init__()
        cin = 64
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, planes, stride=2 if (i > 0 and j == 0) else 1))
                cin = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``lengths`` (B,): valid time steps of the input (halved by each stride-2 block)."""
        for i in range(1, 5):
            for block in getattr(self, f"layer{i}"):
                if lengths is not None and block.stride == 2:
                    lengths = torch.div(lengths, 2, rounding_mode="floor")
                x = block(x, lengths)
        return x


class _PannsBase(AudioEncoder):
    """Shared front end, mask handling, clip head and checkpoint loading."""

    sample_rate = 32000
    out_dim = 2048
    computation = 2
    time_factors: tuple[int, ...] = ()
    arch = ""

    def __init__(self, classes_num: int = 527) -> None:
        super().__init__()
        self.frontend = panns_logmel()
        self.bn0 = nn.BatchNorm2d(64)
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, classes_num)
        self.weights_id = "random"

    def body(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, T, F) -> (B, C, T', F'); ``lengths`` (B,): valid time steps of each row."""
        raise NotImplementedError

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: wave (B, N) at 32 kHz, wave_mask (B, N) bool prefix mask. Returns frames (B, T', 2048),
        mask (B, T').

        A clip's valid frames equal those of the clip encoded alone, whatever its batch: the
        STFT's reflect padding is taken at the clip's own end, and the step after each row's
        end is zeroed before every 3x3 convolution (as the convolution's zero padding is when
        the clip is alone). A clip shorter than 32 hops is zero-padded to 32 * 320 samples
        (one frame), alone as in a batch."""
        min_samples = 32 * PANNS_FRONTEND["hop_length"]  # at least 32 frames (T' >= 1)
        n_valid = valid_counts(wave, wave_mask).cpu()
        n_eff = torch.where(n_valid > 0, n_valid.clamp(min=min_samples), n_valid)  # alone: zero-padded
        wave, wave_mask = pad_to_min(wave, wave_mask, min_samples)
        exact = bool((n_valid < wave.shape[1]).any())
        t_valid = self.frontend.num_frames(n_eff)  # (B,) mel frames of each clip alone
        mel = self.frontend(wave, n_valid if exact else None)  # (B, T, 64)
        if exact:
            mel = short_rows_alone(mel, wave, n_valid, min_samples, self.frontend)
        x = mel[:, None]  # (B, 1, T, 64)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.body(x, t_valid if exact else None)  # (B, 2048, T', F')
        frames = x.mean(dim=3).transpose(1, 2)  # (B, T', 2048)
        t_out = t_valid
        for f in self.time_factors:
            t_out = torch.div(t_out, f, rounding_mode="floor")
        return frames, length_mask(t_out.to(frames.device), frames.shape[1])

    def clip(self, frames: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Official clip head on valid frames: embedding (B, 2048) and clipwise_output (B, 527)."""
        x = masked_mean_max(frames, mask)
        x = F.dropout(x, p=0.5, training=self.training)
        emb = F.relu(self.fc1(x))
        return {"embedding": emb, "clipwise_output": torch.sigmoid(self.fc_audioset(emb))}

    def config(self) -> dict:
        return {**super().config(), "arch": self.arch, "frontend": dict(PANNS_FRONTEND), "weights": self.weights_id}

    @classmethod
    def from_pretrained(cls, path: str | Path, strict: bool = True, check_frontend: bool = True,
                        classes_num: int = 527) -> "_PannsBase":
        """Load an official PANNs checkpoint (never downloads).

        Args:
            path: ``.pth`` (``{"model": state_dict}``, read with ``weights_only=True``) or
                ``.safetensors``; ``module.`` prefixes are stripped.
            strict: missing/unexpected/mis-shaped keys raise :class:`CheckpointError`
                naming them; ``False`` warns and loads the matching keys.
            check_frontend: compare the torchlibrosa buffers with our front end (else ignore them).
        """
        path = Path(path)
        sd = load_state_dict(path, key=None if path.suffix == ".safetensors" else "model")
        sd = strip_prefix(sd, ("module.",))
        model = cls(classes_num=classes_num)
        frontend_keys = [k for k in model.state_dict() if k.startswith("frontend.")]
        if check_frontend:
            _check_frontend(sd, strict, path)
        load_into(model, sd, strict=strict, ignore=list(TORCHLIBROSA_KEYS) + frontend_keys, source=str(path))
        model.weights_id = f"{path.name}:{file_digest(path)[:16]}"
        return model.eval()


def _check_frontend(sd: dict, strict: bool, path: Path, atol: float = 1e-4) -> None:
    ref = torchlibrosa_buffers(**{k: PANNS_FRONTEND[k] for k in ("n_fft", "n_mels", "sample_rate", "fmin", "fmax")})
    bad = []
    for k, r in ref.items():
        if k not in sd:
            continue  # absent front-end buffers are fine: ours is computed, not loaded
        v = sd[k].to(torch.float32)
        if tuple(v.shape) != tuple(r.shape):
            bad.append(f"{k}: shape {tuple(v.shape)} vs expected {tuple(r.shape)}")
        elif not math.isclose(0.0, float((v - r).abs().max()), abs_tol=atol):
            bad.append(f"{k}: max |diff| {float((v - r).abs().max()):.3g} > {atol}")
    if bad:
        msg = f"{path}: torchlibrosa front end differs from PANNS_FRONTEND {PANNS_FRONTEND}: {'; '.join(bad)}"
        if strict:
            raise CheckpointError(msg + " (check_frontend=False ignores these buffers)")
        warnings.warn(msg, stacklevel=3)


class Cnn14(_PannsBase):
    """PANNs CNN14: 6 conv blocks (64..2048 ch), time pooled by 2 in blocks 1-5 (T' = T // 32)."""

    arch = "cnn14"
    time_factors = (2, 2, 2, 2, 2)

    def __init__(self, classes_num: int = 527) -> None:
        super().__init__(classes_num)
        chans = (1, 64, 128, 256, 512, 1024, 2048)
        for i in range(6):
            setattr(self, f"conv_block{i + 1}", ConvBlock(chans[i], chans[i + 1]))

    def body(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, (2, 2) if i < 6 else (1, 1), lengths)
            x = F.dropout(x, p=0.2, training=self.training)
            if lengths is not None and i < 6:
                lengths = torch.div(lengths, 2, rounding_mode="floor")
        return x


class ResNet38(_PannsBase):
    """PANNs ResNet38: conv block, ResNet (3, 4, 6, 3) basic blocks, 2x2 pool, 512->2048 block."""

    arch = "resnet38"
    time_factors = (2, 1, 2, 2, 2, 2)  # conv_block1, layer1..4, avg_pool before conv_block_after1

    def __init__(self, classes_num: int = 527) -> None:
        super().__init__(classes_num)
        self.conv_block1 = ConvBlock(1, 64)
        self.resnet = ResNetBody((3, 4, 6, 3))
        self.conv_block_after1 = ConvBlock(512, 2048)

    def body(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        half = (lambda n: None if n is None else torch.div(n, 2, rounding_mode="floor"))
        x = F.dropout(self.conv_block1(x, (2, 2), lengths), p=0.2, training=self.training)
        lengths = half(lengths)
        x = F.avg_pool2d(self.resnet(x, lengths), 2)
        lengths = half(half(half(half(lengths))))  # three stride-2 layers, then the pooling above
        x = F.dropout(x, p=0.2, training=self.training)
        return F.dropout(self.conv_block_after1(x, (1, 1), lengths), p=0.2, training=self.training)
