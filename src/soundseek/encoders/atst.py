"""ATST-Frame audio encoder (METHODS §3).

Reference: X. Li, N. Shao, X. Li, "Self-supervised Audio Teacher-Student Transformer for Both
Clip-level and Frame-level Tasks", IEEE/ACM TASLP 2024 (arXiv 2306.04186). Architecture and
parameter names follow the official code (repository ``Audio-WestlakeU/audiossl``,
``audiossl/methods/atstframe/audio_transformer.py`` ``FrameAST_base``, ``audiossl/modules/
transformer.py`` ``Block``, ``model.py`` ``FrameATST``/``FrameATSTLightningModule``) so that the
released ``atstframe_base.ckpt`` loads without renaming. The code here is our own.

Checkpoint: a PyTorch-Lightning checkpoint (``{"state_dict": ..., "hyper_parameters": ...,
...}``) of ``FrameATSTLightningModule``; the frame encoder used downstream is
``model.teacher.encoder`` (``get_frame_atst`` in ``downstream/comparison_models/
frame_atst_module.py``), i.e. keys ``model.teacher.encoder.<name>``. Student, projector and
predictor weights are ignored. A fine-tuned downstream checkpoint whose keys contain
``encoder.encoder.<name>`` and a bare encoder state dict are accepted too.

Architecture (``FrameAST_base``: ``patch_h=64, patch_w=4, embed_dim=768, depth=12, num_heads=12,
qkv_bias=False``, LayerNorm eps 1e-6, ``patch_embed="Linear"``, ``pos_type="cut"``,
``nprompt=0``, ``spec_h=n_mels=64``, ``spec_w=1001``): each patch covers all 64 mel bins x 4
frames, flattened mel-major (``b c (h p1) (w p2) -> b (w h) (p1 p2 c)``) and embedded by
``patch_embed.patch_embed`` Linear(256, 768); ``pos_embed`` (1, 251, 768) of which positions
1..T' are added (position 0 is unused); ``mask_embed`` (1, 1, 768) is a training-time token,
kept only so the state dict matches; 12 pre-norm blocks (``blocks.N.norm1``, ``attn.qkv``
without bias, ``attn.proj``, ``norm2``, ``mlp.fc1``/``fc2``, exact GELU); final ``norm_frame``.
Padded patches are removed from the attention keys (official: additive -10000 on keys beyond
the clip's patch count, which is the same after the softmax in float32).

Front end (official ``FreezingTransform``, applied per clip): torchaudio
``MelSpectrogram(16000, n_fft=1024, win_length=1024, hop_length=160, f_min=60, f_max=7800,
n_mels=64)`` (periodic Hann, ``center=True`` reflect padding, power 2, HTK mel scale, no
filter normalisation) -> ``AmplitudeToDB(power, top_db=80)`` (``10 log10(max(x, 1e-10))``,
floored at the clip's max - 80) -> ``MinMax(-79.6482, 50.6842)``: ``(x - min) / (max - min) *
2 - 1``. We use :class:`soundseek.audio.features.LogMel` with the same options (its
``htk=True, mel_norm=None`` filters equal torchaudio's). The spectrogram of each clip is
computed from its valid samples alone (the top_db floor is per clip, as officially).

Output (frame level): the per-time-step tokens after ``norm_frame`` -> (B, T', 768),
``T' = T // 4`` for T = 1 + N // 160 mel frames: one frame per 40 ms (25 Hz). A non-empty clip
shorter than one patch (480 samples) is zero-padded to 480 samples (the official code would
give no token).

Long clips: ``pos_embed`` covers 250 patches = 1000 mel frames = 10 s. Input longer than
``max_seconds`` (default 10) is, with ``long="segment"`` (default), cut per example into
non-overlapping segments that are encoded separately and concatenated in time;
``long="center"`` keeps the central ``max_seconds`` of each clip (official ``CentralCrop``);
``long="error"`` raises. (The official HEAR-style ``embedding.py`` instead computes one
spectrogram of the whole clip and cuts it into 1001-frame chunks, so its top_db floor is per
clip, ours per segment; its timestamp embedding concatenates the 12 blocks' normalised outputs,
ours is the last block's, as in the downstream ``FrameATSTPredModule(use_last=True)``.)
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from soundseek.audio.features import LogMel
from soundseek.encoders.base import AudioEncoder, encode_in_segments, file_digest, valid_lengths
from soundseek.encoders.checkpoint import load_into, load_state_dict, strip_prefix
from soundseek.encoders.vit import Block

ATST_FRONTEND = dict(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160, n_mels=64, fmin=60.0,
                     fmax=7800.0, top_db=80.0, db_min=-79.6482, db_max=50.6842)
LONG_MODES = ("segment", "center", "error")
CKPT_PREFIXES = ("model.teacher.encoder.", "encoder.encoder.")


def atst_logmel() -> LogMel:
    """LogMel configured as the official ``FreezingTransform`` (before MinMax)."""
    p = ATST_FRONTEND
    return LogMel(sample_rate=p["sample_rate"], n_fft=p["n_fft"], hop_length=p["hop_length"],
                  win_length=p["win_length"], n_mels=p["n_mels"], fmin=p["fmin"], fmax=p["fmax"], power=2.0,
                  center=True, pad_mode="reflect", mel_norm=None, htk=True, log="db", amin=1e-10,
                  top_db=p["top_db"])


class PatchEmbed(nn.Module):
    """Official ``PatchEmbed_v2``: Linear over (all mel bins x patch_w frames), mel-major."""

    def __init__(self, n_mels: int, patch_w: int, dim: int) -> None:
        super().__init__()
        self.patch_w = patch_w
        self.patch_embed = nn.Linear(n_mels * patch_w, dim)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, M, T) -> (B, T // patch_w, D)."""
        b, m, t = spec.shape
        tp = t // self.patch_w
        x = spec[:, :, : tp * self.patch_w].reshape(b, m, tp, self.patch_w).permute(0, 2, 1, 3)
        return self.patch_embed(x.reshape(b, tp, m * self.patch_w))


class ATSTFrame(AudioEncoder):
    """ATST-Frame (``FrameAST_base`` with the defaults); see the module docstring.

    Args:
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: transformer size (defaults: base).
        patch_w: frames per patch (each patch spans all 64 mel bins).
        spec_w: official ``spec_w`` (1001): ``pos_embed`` has ``spec_w // patch_w + 1`` rows.
        max_seconds: longest input encoded in one pass (must fit ``pos_embed``).
        long: ``"segment"`` | ``"center"`` (the central ``max_seconds`` of each clip) | ``"error"``
            for input longer than ``max_seconds``.
    """

    sample_rate = 16000
    out_dim = 768

    def __init__(self, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = False, patch_w: int = 4, spec_w: int = 1001, max_seconds: float = 10.0,
                 long: str = "segment") -> None:
        super().__init__()
        if long not in LONG_MODES:
            raise ValueError(f"Invalid long {long!r}. Valid: {', '.join(LONG_MODES)}")
        self.arch = dict(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                         qkv_bias=qkv_bias, patch_w=patch_w, spec_w=spec_w)
        self.out_dim = int(embed_dim)
        self.patch_w = int(patch_w)
        self.max_seconds, self.long = float(max_seconds), long
        self.frontend = atst_logmel()
        n_mels, hop = self.frontend.n_mels, self.frontend.hop_length
        self.num_patches = spec_w // patch_w
        self.max_samples = int(round(self.max_seconds * self.sample_rate))
        self.min_samples = (patch_w - 1) * hop  # 1 + N // hop >= patch_w
        if self.max_samples < max(self.min_samples, 1):
            raise ValueError(f"max_seconds={max_seconds} is shorter than one patch")
        if self._n_patches(self.frontend.num_frames(self.max_samples)) > self.num_patches:
            raise ValueError(f"max_seconds={max_seconds} gives more than the {self.num_patches} positions "
                             f"of pos_embed (spec_w={spec_w})")

        self.patch_embed = PatchEmbed(n_mels, patch_w, embed_dim)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, embed_dim))  # training-time only
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, embed_dim))
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth)])
        self.norm_frame = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_weights()
        self.weights_id = "random"

    def _init_weights(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.mask_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _n_patches(self, n_frames: int | torch.Tensor) -> int | torch.Tensor:
        if isinstance(n_frames, torch.Tensor):
            return torch.div(n_frames, self.patch_w, rounding_mode="floor")
        return int(n_frames) // self.patch_w

    # ---- front end -------------------------------------------------------------------------
    def spectrogram(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised log-mel (B, n_mels, T) of each clip's valid samples (zeros after them) and
        the valid mel-frame counts (B,). Non-empty clips shorter than one patch are zero-padded
        to one patch; empty clips get 0 frames."""
        b, n = wave.shape
        n_valid = torch.full((b,), n, dtype=torch.long) if wave_mask is None else wave_mask.long().sum(-1).cpu()
        n_eff = torch.where(n_valid > 0, n_valid.clamp(min=self.min_samples), n_valid)
        t_valid = torch.where(n_eff > 0, self.frontend.num_frames(n_eff), torch.zeros_like(n_eff))
        t_total = max(int(t_valid.max()), self.patch_w)
        lo, hi = ATST_FRONTEND["db_min"], ATST_FRONTEND["db_max"]
        spec = wave.new_zeros((b, self.frontend.n_mels, t_total))
        if bool((n_eff == n).all()):  # no padding: one batched call (top_db is per example)
            spec = self.frontend(wave).transpose(1, 2)
        else:
            for i in range(b):
                nv, ne = int(n_valid[i]), int(n_eff[i])
                if ne == 0:
                    continue
                x = F.pad(wave[i:i + 1, :nv], (0, ne - nv))
                m = self.frontend(x)[0].T  # (M, T_i)
                spec[i, :, : m.shape[1]] = m
        spec = (spec - lo) / (hi - lo) * 2.0 - 1.0
        if not bool((n_eff == n).all()):
            spec = spec * (torch.arange(t_total)[None, None, :] < t_valid[:, None, None]).to(spec)
        return spec, t_valid

    # ---- transformer -----------------------------------------------------------------------
    def forward_tokens(self, spec: torch.Tensor, t_valid: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_mels, T) -> (tokens (B, T', D) after ``norm_frame``, token mask (B, T'))."""
        x = self.patch_embed(spec)
        b, tp, _ = x.shape
        if tp > self.num_patches:
            raise ValueError(f"{tp} patches exceed the model's {self.num_patches} positions "
                             "(input longer than max_seconds)")
        x = x + self.pos_embed[:, 1: tp + 1]
        if t_valid is None:
            pmask = torch.ones(b, tp, dtype=torch.bool, device=x.device)
        else:
            pmask = torch.arange(tp, device=x.device)[None, :] < self._n_patches(t_valid.to(x.device))[:, None]
        key_mask = None
        if not bool(pmask.all()):
            # rows without any valid patch attend to everything (their output is masked out)
            key_mask = pmask | ~pmask.any(dim=1, keepdim=True)
        for blk in self.blocks:
            x = blk(x, key_mask)
        return self.norm_frame(x), pmask

    def _encode_window(self, wave: torch.Tensor, wave_mask: torch.Tensor | None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        spec, t_valid = self.spectrogram(wave, wave_mask)
        return self.forward_tokens(spec, t_valid)

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: wave (B, N) float at 16 kHz, wave_mask (B, N) bool prefix mask or None.
        Returns: frames (B, T', 768) (40 ms hop), frame_mask (B, T') bool."""
        if wave.ndim != 2:
            raise ValueError(f"ATSTFrame expects a wave of shape (B, N), got {tuple(wave.shape)}")
        if wave.shape[1] <= self.max_samples:
            return self._encode_window(wave, wave_mask)
        if self.long == "error":
            raise ValueError(f"Input of {wave.shape[1] / self.sample_rate:.2f} s exceeds max_seconds="
                             f"{self.max_seconds} (long='error')")
        n_valid = valid_lengths(wave, wave_mask)
        if self.long == "center":  # central crop of each clip's valid samples (official CentralCrop)
            out = wave.new_zeros((wave.shape[0], self.max_samples))
            mask = torch.zeros(out.shape, dtype=torch.bool, device=wave.device)
            for i, nv in enumerate(n_valid):
                s = max(0, (int(nv) - self.max_samples) // 2)
                e = min(int(nv), s + self.max_samples)
                out[i, : e - s] = wave[i, s:e]
                mask[i, : e - s] = True
            return self._encode_window(out, mask)
        return self._forward_segmented(wave, n_valid)

    def _forward_segmented(self, wave: torch.Tensor, n_valid: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return encode_in_segments(self._encode_window, wave, n_valid, self.sample_rate, self.max_samples, self.out_dim)

    def config(self) -> dict:
        return {**super().config(), "arch": "atst_frame", **self.arch, "frontend": dict(ATST_FRONTEND),
                "max_seconds": self.max_seconds, "long": self.long, "weights": self.weights_id}

    @classmethod
    def from_pretrained(cls, path: str | Path, strict: bool = True, **kw) -> "ATSTFrame":
        """Load the official ATST-Frame checkpoint (never downloads).

        Args:
            path: ``atstframe_base.ckpt`` (Lightning checkpoint, read with ``weights_only=True``;
                keys ``model.teacher.encoder.*`` are used, everything else is ignored), a
                downstream checkpoint with ``encoder.encoder.*`` keys, a bare encoder state dict
                (``.pt``/``.pth``, ``module.`` stripped) or ``.safetensors``.
            strict: missing/unexpected/mis-shaped encoder keys raise :class:`CheckpointError`
                naming them; ``False`` warns and loads the matching keys.
            **kw: constructor options (architecture must match the file; ``max_seconds``, ``long``).
        """
        path = Path(path)
        sd = load_state_dict(path)
        for prefix in CKPT_PREFIXES:
            sel = {k[k.index(prefix) + len(prefix):]: v for k, v in sd.items() if prefix in k}
            if sel:
                sd = sel
                break
        else:
            sd = strip_prefix(sd, ("module.",))
        model = cls(**kw)
        load_into(model, sd, strict=strict, source=str(path))
        model.weights_id = f"{path.name}:{file_digest(path)[:16]}"
        return model.eval()
