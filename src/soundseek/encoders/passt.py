"""PaSST audio encoder (METHODS §3).

Reference: K. Koutini, J. Schlüter, H. Eghbal-zadeh, G. Widmer, "Efficient Training of Audio
Transformers with Patchout", Interspeech 2022. Architecture and parameter names follow the
official ``passt_s_swa_p16_128_ap476`` (repositories ``kkoutini/PaSST`` ``models/passt.py`` and
``kkoutini/passt_hear21`` ``hear21passt/models/passt.py``), so that the released
``passt-s-f128-p16-s10-ap.476-swa.pt`` (a *bare* state dict; ``{"model": sd}`` is accepted too)
loads without renaming. The code here is our own.

Architecture (DeiT-B, distilled): ``patch_embed.proj`` Conv2d(1, 768, 16x16, stride 10x10) on a
(128 mel x 998 frame) log-mel image -> a 12 x 99 (frequency x time) patch grid; separate
positional embeddings ``freq_new_pos_embed`` (1, 768, 12, 1) and ``time_new_pos_embed``
(1, 768, 1, 99) (the time one is cut to the number of time patches for shorter input);
``cls_token``/``dist_token`` plus ``new_pos_embed`` (1, 2, 768); 12 pre-norm blocks
(``blocks.N.norm1``, ``attn.qkv`` (with bias), ``attn.proj``, ``norm2``, ``mlp.fc1``/``fc2``, GELU,
LayerNorm eps 1e-6); final ``norm``; heads ``head`` = Sequential(LayerNorm, Linear 527)
(``head.0.*``, ``head.1.*``) and ``head_dist`` (Linear 527). Patchout is a training-time
regulariser and is not implemented (inference never drops patches).

Front end (official ``AugmentMelSTFT`` in eval mode): pre-emphasis ``y[n] = x[n+1] - 0.97 x[n]``
(valid convolution: N -> N - 1 samples), ``torch.stft`` n_fft 1024, *symmetric* Hann window of
800 samples centred in the frame, hop 320, ``center=True`` with reflect padding, power 2;
128 Kaldi mel banks (``torchaudio.compliance.kaldi.get_mel_banks``: mel = 1127 ln(1 + f/700),
triangles linear *in mel*, peak 1, Nyquist bin 0) from fmin 0 to fmax **15 kHz** — the official
``fmax=None`` becomes ``sr // 2 - fmax_aug_range // 2 = 16000 - 2000 // 2`` (hear21passt
``get_basic_model``; the random fmin/fmax jitter is training-only); ``ln(x + 1e-5)``; then
``(x + 4.5) / 5``. We use :class:`soundseek.audio.features.LogMel` (n_fft 1024, win 800, hop 320,
128 bands, power 2, centred reflect padding, ``log="ln"`` with ``log_offset=1e-5``) and replace
its two non-persistent buffers so that the result equals the official one up to float rounding:
``window`` by the symmetric Hann window (LogMel builds a periodic one) and ``mel_fb`` by the
Kaldi banks (:func:`kaldi_mel_banks`; LogMel's own ``mel_filterbank`` with ``htk=True,
mel_norm=None`` builds triangles linear in Hz, which differ slightly). ``mel="htk"`` keeps
LogMel's HTK-scale Hz-linear triangles instead (a documented approximation). Pre-emphasis and
the final normalisation are applied by the encoder.

Output (frame level, for TAP-style pooling): the patch tokens after the final ``norm``,
reshaped to (B, F', T', D) (the official flattening is frequency-major: token ``f * T' + t``)
and averaged over the F' = 12 frequency rows -> (B, T', 768). One output frame = 10 mel frames
= 100 ms hop, 16 mel frames (~160 ms + STFT window) receptive field before attention.

Padding and masks: a time patch is valid when all 16 mel frames it covers are frames of the
unpadded clip (``T' = (T - 16) // 10 + 1`` valid patches for T valid mel frames, at least one
for any non-empty clip). With ``mask_attention=True`` (default) the mel spectrogram of each
padded example is computed from its valid samples alone (the STFT's reflect padding at the
clip's true end, not at the batch's end) and padded patches are removed from the attention
keys, so a clip's valid frames do not depend on the batch it is in (up to float rounding; the
cls/dist tokens are always attended). ``mask_attention=False`` is the official behaviour (every
patch of the padded input attends to every other; inputs shorter than one patch, 4801 samples,
are zero-padded in the wave). With ``mask_attention``, spectrogram frames after a clip's valid
frames (and a clip shorter than one patch) are filled with ``(ln(1e-5) + 4.5) / 5``, the value
of digital silence. Float tolerance, not bit-equality: batched and single-clip attention may
round differently (~1e-7 observed).

Long clips: PaSST's time embedding covers 99 patches (~10 s). Input longer than
``max_seconds`` (default 10) is, with ``long="segment"`` (default), cut per example with
:func:`soundseek.audio.io.segment` into non-overlapping ``max_seconds`` segments that are
encoded separately; their valid frames are concatenated in time (METHODS §2). Each 10 s
segment yields 99 frames (9.9 s of hops), so the concatenated frame times have a small gap at
each segment boundary. ``long="start"`` keeps the first ``max_seconds`` of the batch; ``long="error"`` raises.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from soundseek.audio.features import LogMel
from soundseek.encoders.base import AudioEncoder, encode_in_segments, file_digest, valid_lengths
from soundseek.encoders.checkpoint import load_into, load_state_dict, strip_prefix
from soundseek.encoders.vit import Block

PASST_FRONTEND = dict(sample_rate=32000, n_fft=1024, win_length=800, hop_length=320, n_mels=128, fmin=0.0,
                      fmax=15000.0, preemphasis=0.97, log_offset=1e-5, norm_shift=4.5, norm_scale=5.0)
LONG_MODES = ("segment", "start", "error")
MEL_MODES = ("kaldi", "htk")


def kaldi_mel_banks(n_mels: int, n_fft: int, sample_rate: float, fmin: float, fmax: float) -> np.ndarray:
    """Kaldi-style triangular mel banks (no VTLN warping), padded to ``n_fft // 2 + 1`` bins.

    Mel scale ``1127 ln(1 + f / 700)``; band edges equally spaced in mel between fmin and fmax;
    the weight of FFT bin k (frequency ``k * sr / n_fft``, k < n_fft / 2) is the triangle
    ``max(0, min((m - left) / (centre - left), (right - m) / (right - centre)))`` evaluated in
    mel; the Nyquist bin gets weight 0 (PaSST pads Kaldi's n_fft / 2 columns with a zero column).

    Returns:
        (n_mels, n_fft // 2 + 1) float32.
    """
    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    n_bins = n_fft // 2
    nyquist = 0.5 * sample_rate
    if fmax <= 0:
        fmax += nyquist
    if not 0 <= fmin < fmax <= nyquist:
        raise ValueError(f"Need 0 <= fmin < fmax <= {nyquist}, got fmin={fmin}, fmax={fmax}")
    lo, hi = mel(fmin), mel(fmax)
    delta = (hi - lo) / (n_mels + 1)
    b = np.arange(n_mels, dtype=np.float64)[:, None]
    left, centre, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel(sample_rate / n_fft * np.arange(n_bins))[None, :]
    w = np.maximum(0.0, np.minimum((m - left) / (centre - left), (right - m) / (right - centre)))
    return np.pad(w, ((0, 0), (0, 1))).astype(np.float32)


def passt_logmel(mel: str = "kaldi") -> LogMel:
    """LogMel configured as PaSST's eval-mode ``AugmentMelSTFT`` (before pre-emphasis is applied
    and without the final ``(x + 4.5) / 5``); see the module docstring."""
    if mel not in MEL_MODES:
        raise ValueError(f"Invalid mel {mel!r}. Valid: {', '.join(MEL_MODES)}")
    p = PASST_FRONTEND
    lm = LogMel(sample_rate=p["sample_rate"], n_fft=p["n_fft"], hop_length=p["hop_length"],
                win_length=p["win_length"], n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"], power=2.0,
                center=True, pad_mode="reflect", mel_norm=None, htk=True, log="ln", amin=1e-10,
                log_offset=p["log_offset"])
    # official: torch.hann_window(800, periodic=False)
    lm.window = torch.hann_window(p["win_length"], periodic=False, dtype=torch.float64).float()
    if mel == "kaldi":
        fb = kaldi_mel_banks(p["n_mels"], p["n_fft"], p["sample_rate"], p["fmin"], p["fmax"])
        lm.mel_fb = torch.from_numpy(np.ascontiguousarray(fb.T))  # (F, M)
    return lm


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int, stride: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(1, dim, kernel_size=patch, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class PaSST(AudioEncoder):
    """PaSST-S (``passt_s_swa_p16_128_ap476`` with the defaults); see the module docstring.

    Args:
        embed_dim, depth, num_heads, mlp_ratio: transformer size (defaults: ViT/DeiT-B).
        patch, stride: square patch size and stride on the (mel, frame) image.
        time_patches: length of ``time_new_pos_embed`` (99 = 998 frames = 10 s).
        num_classes: AudioSet head width (527).
        max_seconds: longest input encoded in one pass (must fit ``time_patches``).
        long: ``"segment"`` | ``"start"`` (the first ``max_seconds``) | ``"error"`` for input longer
            than ``max_seconds``.
        mask_attention: keep padded patches out of the attention (see module docstring).
        mel: ``"kaldi"`` (exact official mel banks) or ``"htk"`` (LogMel's own HTK filters).
    """

    sample_rate = 32000
    out_dim = 768

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 patch: int = 16, stride: int = 10, time_patches: int = 99, num_classes: int = 527,
                 max_seconds: float = 10.0, long: str = "segment", mask_attention: bool = True,
                 mel: str = "kaldi") -> None:
        super().__init__()
        if long not in LONG_MODES:
            raise ValueError(f"Invalid long {long!r}. Valid: {', '.join(LONG_MODES)}")
        self.arch = dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, patch=patch,
                         stride=stride, time_patches=time_patches, num_classes=num_classes)
        self.out_dim = int(embed_dim)
        self.patch, self.stride = int(patch), int(stride)
        self.max_seconds, self.long, self.mask_attention, self.mel = float(max_seconds), long, \
            bool(mask_attention), mel
        self.frontend = passt_logmel(mel)
        hop = self.frontend.hop_length
        n_mels = self.frontend.n_mels
        self.freq_patches = (n_mels - patch) // stride + 1
        self.max_samples = int(round(self.max_seconds * self.sample_rate))
        # fewest samples giving one patch: 1 + (N - 1) // hop >= patch
        self.min_samples = (patch - 1) * hop + 1
        if self.max_samples < self.min_samples:
            raise ValueError(f"max_seconds={max_seconds} is shorter than one patch ({self.min_samples} samples)")
        if self._n_patches(self._n_frames(self.max_samples)) > time_patches:
            raise ValueError(f"max_seconds={max_seconds} gives more than time_patches={time_patches} time patches")
        self.silence = (math.log(PASST_FRONTEND["log_offset"]) + PASST_FRONTEND["norm_shift"]) \
            / PASST_FRONTEND["norm_scale"]

        self.patch_embed = PatchEmbed(embed_dim, patch, stride)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.new_pos_embed = nn.Parameter(torch.zeros(1, 2, embed_dim))
        self.freq_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, self.freq_patches, 1))
        self.time_new_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, 1, time_patches))
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, num_classes))
        self.head_dist = nn.Linear(embed_dim, num_classes)
        self._init_weights()
        self.weights_id = "random"

    def _init_weights(self) -> None:
        for p in (self.cls_token, self.dist_token, self.new_pos_embed, self.freq_new_pos_embed,
                  self.time_new_pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    # ---- sizes -----------------------------------------------------------------------------
    def _n_frames(self, n_samples: int | torch.Tensor) -> int | torch.Tensor:
        """Mel frames of a clip of n samples (pre-emphasis leaves n - 1)."""
        if isinstance(n_samples, torch.Tensor):
            return self.frontend.num_frames((n_samples - 1).clamp(min=0))
        return self.frontend.num_frames(max(int(n_samples) - 1, 0))

    def _n_patches(self, n_frames: int | torch.Tensor) -> int | torch.Tensor:
        """Time patches fully inside n mel frames (0 if fewer than one patch)."""
        if isinstance(n_frames, torch.Tensor):
            t = torch.div(n_frames - self.patch, self.stride, rounding_mode="floor") + 1
            return t.clamp(min=0)
        return max(0, (int(n_frames) - self.patch) // self.stride + 1)

    # ---- front end -------------------------------------------------------------------------
    def _mel_one(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) -> normalised log-mel (B, n_mels, T) of the official front end."""
        k = PASST_FRONTEND["preemphasis"]
        x = wave[:, 1:] - k * wave[:, :-1]  # (B, N - 1)
        mel = self.frontend(x)  # (B, T, M)
        mel = (mel + PASST_FRONTEND["norm_shift"]) / PASST_FRONTEND["norm_scale"]
        return mel.transpose(1, 2)

    def spectrogram(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model input (B, 1, n_mels, T) and the valid mel-frame counts (B,).

        Padded examples (with ``mask_attention``) get the spectrogram of their valid samples
        alone, followed by the silence value; the width is at least one patch."""
        b, n = wave.shape
        n_valid = torch.full((b,), n, dtype=torch.long) if wave_mask is None else wave_mask.long().sum(-1).cpu()
        t_total = max(self._n_frames(n), self.patch)
        t_valid = self._n_frames(n_valid)  # (B,)
        if self.mask_attention and (n < self.min_samples or bool((n_valid < n).any())):
            mel = wave.new_full((b, self.frontend.n_mels, t_total), self.silence)
            for i in range(b):
                nv = int(n_valid[i])
                if nv >= 2:
                    m = self._mel_one(wave[i:i + 1, :nv])
                    mel[i, :, : m.shape[-1]] = m[0]
        else:  # the official computation on the (zero-padded) batch
            src = wave if n >= self.min_samples else F.pad(wave, (0, self.min_samples - n))
            mel = self._mel_one(src)
        return mel[:, None], t_valid

    # ---- transformer -----------------------------------------------------------------------
    def forward_tokens(self, spec: torch.Tensor, t_valid: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, n_mels, T) -> (cls (B, D), dist (B, D), patches (B, F', T', D)) after ``norm``.

        ``t_valid`` (B,) valid mel frames: with ``mask_attention``, patches beyond them are
        not attended."""
        x = self.patch_embed(spec)  # (B, D, F', T')
        b, d, fp, tp = x.shape
        if tp > self.time_new_pos_embed.shape[-1]:
            raise ValueError(f"{tp} time patches exceed the model's {self.time_new_pos_embed.shape[-1]} "
                             "(input longer than max_seconds)")
        x = x + self.time_new_pos_embed[..., :tp] + self.freq_new_pos_embed
        x = x.flatten(2).transpose(1, 2)  # (B, F' T', D), frequency-major
        cls = self.cls_token.expand(b, -1, -1) + self.new_pos_embed[:, :1]
        dist = self.dist_token.expand(b, -1, -1) + self.new_pos_embed[:, 1:]
        x = torch.cat((cls, dist, x), dim=1)
        key_mask = None
        if self.mask_attention and t_valid is not None:
            pmask = self._patch_mask(t_valid.to(x.device), tp)  # (B, T')
            if not bool(pmask.all()):
                key_mask = torch.cat((torch.ones(b, 2, dtype=torch.bool, device=x.device),
                                      pmask[:, None, :].expand(b, fp, tp).reshape(b, fp * tp)), dim=1)
        for blk in self.blocks:
            x = blk(x, key_mask)
        x = self.norm(x)
        return x[:, 0], x[:, 1], x[:, 2:].reshape(b, fp, tp, d)

    def _patch_mask(self, t_valid: torch.Tensor, tp: int) -> torch.Tensor:
        """Valid mel frames (B,) -> (B, T') bool; any clip with a sample keeps its first patch."""
        n = self._n_patches(t_valid)
        n = torch.where(t_valid > 0, n.clamp(min=1), n)
        return torch.arange(tp, device=t_valid.device)[None, :] < n[:, None]

    def _encode_window(self, wave: torch.Tensor, wave_mask: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        spec, t_valid = self.spectrogram(wave, wave_mask)
        cls, dist, patches = self.forward_tokens(spec, t_valid)
        frames = patches.mean(dim=1)  # (B, T', D): average over frequency rows
        return frames, self._patch_mask(t_valid.to(frames.device), frames.shape[1]), cls, dist

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: wave (B, N) float at 32 kHz, wave_mask (B, N) bool prefix mask or None.
        Returns: frames (B, T', 768) (100 ms hop), frame_mask (B, T') bool."""
        if wave.ndim != 2:
            raise ValueError(f"PaSST expects a wave of shape (B, N), got {tuple(wave.shape)}")
        if wave.shape[1] <= self.max_samples:
            return self._encode_window(wave, wave_mask)[:2]
        if self.long == "error":
            raise ValueError(f"Input of {wave.shape[1] / self.sample_rate:.2f} s exceeds max_seconds="
                             f"{self.max_seconds} (long='error')")
        if self.long == "start":
            m = None if wave_mask is None else wave_mask[:, : self.max_samples]
            return self._encode_window(wave[:, : self.max_samples], m)[:2]
        return self._forward_segmented(wave, wave_mask)

    def _forward_segmented(self, wave: torch.Tensor, wave_mask: torch.Tensor | None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_in_segments(lambda w, m: self._encode_window(w, m)[:2], wave, valid_lengths(wave, wave_mask),
                                  self.sample_rate, self.max_samples, self.out_dim)

    def clip(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Official clip head on one window (<= max_seconds): ``features = (cls + dist) / 2``
        (B, 768) and AudioSet ``logits = head(features)`` (B, 527)."""
        if wave.shape[1] > self.max_samples:
            raise ValueError("clip() takes at most max_seconds of audio")
        _, _, cls, dist = self._encode_window(wave, wave_mask)
        features = (cls + dist) / 2
        return {"features": features, "logits": self.head(features)}

    def config(self) -> dict:
        return {**super().config(), "arch": "passt", **self.arch, "frontend": {**PASST_FRONTEND, "mel": self.mel},
                "max_seconds": self.max_seconds, "long": self.long, "mask_attention": self.mask_attention,
                "weights": self.weights_id}

    @classmethod
    def from_pretrained(cls, path: str | Path, strict: bool = True, **kw) -> "PaSST":
        """Load an official PaSST checkpoint (never downloads).

        Args:
            path: ``.pt``/``.pth`` (bare state dict as released, or ``{"model": sd}``; read with
                ``weights_only=True``) or ``.safetensors``; ``module.`` prefixes are stripped.
            strict: missing/unexpected/mis-shaped keys raise :class:`CheckpointError` naming
                them; ``False`` warns and loads the matching keys.
            **kw: constructor options (architecture must match the file; ``max_seconds``,
                ``long``, ``mask_attention``, ``mel``).
        """
        path = Path(path)
        sd = strip_prefix(load_state_dict(path), ("module.",))
        model = cls(**kw)
        load_into(model, sd, strict=strict, source=str(path))
        model.weights_id = f"{path.name}:{file_digest(path)[:16]}"
        return model.eval()
