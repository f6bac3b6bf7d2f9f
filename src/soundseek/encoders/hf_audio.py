"""Hugging Face audio encoders from local directories, as frame-level soundseek audio encoders.

``ASTModel`` (Audio Spectrogram Transformer), ``Wav2Vec2Model`` / ``HubertModel`` /
``WavLMModel`` and the Whisper encoder, each loaded with ``local_files_only=True`` from a
``save_pretrained`` directory (config.json, weights, the feature extractor's settings in
``preprocessor_config.json`` or ``processor_config.json``), give
``(frames (B, T, D), frame_mask (B, T))`` like every encoder of :mod:`soundseek.encoders.base`,
so TAP, GPA, every pooling and loss apply; ``trainable=True`` (default, like every encoder)
leaves the weights trainable, ``False`` freezes them; frozen or not, their outputs cache with
:class:`soundseek.encoders.cache.FeatureCache`.

Preprocessing is the checkpoint's feature extractor re-done in torch (it runs on every batch;
the Hugging Face extractors work clip by clip in numpy); only the filter-bank matrices are taken
from the extractor object, so the numbers are its own:

* wav2vec 2.0 / HuBERT / WavLM: ``do_normalize`` -> each clip's valid samples to zero mean and
  unit variance (``(x - mean) / sqrt(var + 1e-7)``), padding zero.
* AST: Kaldi-style fbank as ``ASTFeatureExtractor`` computes it without torchaudio — frames of
  400 samples every 160 (no centring), DC offset removed, pre-emphasis 0.97, symmetric Hann window,
  512-point power spectrum, Kaldi mel banks, ``ln(max(x, 2^-23))`` — then zero-padded or cut to
  ``max_length`` frames and normalised ``(x - mean) / (2 std)``.
* Whisper: log10 mel of the clip zero-padded to ``chunk_length`` seconds (periodic Hann 400,
  hop 160), floored at ``max - 8``, ``(x + 4) / 4``.

Frame-level outputs and masks (valid lengths, never the batch's padding):

* wav2vec-style: the transformer's last hidden states, one frame per 20 ms; a clip keeps the
  frames the convolutional front end computes from its own samples
  (``_get_feat_extract_output_lengths``). Checkpoints with ``feat_extract_norm="layer"`` run
  batched with an attention mask; ``"group"`` ones (GroupNorm over the whole input, e.g.
  wav2vec2-base) run clip by clip, since padding would change their normalisation.
* AST: the patch tokens after the final LayerNorm (distillation and class tokens dropped)
  averaged over the frequency rows of the patch grid, one frame per ``time_stride`` fbank frames;
  a clip keeps ``(n_frames - patch_size) // time_stride + 1`` time patches (at least one). Each
  clip is padded into its own ``max_length``-frame window, as the checkpoint was trained.
* Whisper: the encoder's last hidden states (20 ms per frame) of the clip padded to
  ``chunk_length`` seconds, as the checkpoint was trained; a clip keeps ``ceil(n / 320)`` frames.

Clips longer than one window (AST ``max_length`` frames, Whisper ``chunk_length`` seconds) are
cut into windows whose valid frames are concatenated (:func:`encode_in_segments`); wav2vec-style
models take any length. Clips shorter than one analysis frame are zero-padded to it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundseek.encoders.base import AudioEncoder, encode_in_segments, valid_lengths
from soundseek.encoders.hf_load import (FEATURE_EXTRACTOR_LAYOUTS, feature_extractor_file, load_feature_extractor,
                                        load_local, require_local_dir)

HINT = ("config.json, the weights and the feature extractor settings (preprocessor_config.json or processor_config.json, the layouts written by save_pretrained)")


def _local(path, family: str) -> Path:
    if path is None:
        from soundseek.config import ConfigError

        raise ConfigError(f"{family} needs path= a local Hugging Face model directory (never downloaded)")
    p = require_local_dir(path, family, HINT)
    if feature_extractor_file(p) is None:
        raise FileNotFoundError(f"{p} has no feature extractor settings ({FEATURE_EXTRACTOR_LAYOUTS}); "
                                f"the directory must hold {HINT}")
    if not any(p.glob("model*.safetensors*")) and not any(p.glob("pytorch_model*.bin*")):
        raise FileNotFoundError(f"{p} has no weights (model.safetensors or pytorch_model.bin); "
                                f"the directory must hold {HINT}")
    return p


def _load(cls, p: Path):
    return load_local(cls, p).eval()


class HFAudioEncoder(AudioEncoder):
    """Shared parts: weights identity, trainable/frozen, ``config()``."""

    family = "hf"

    def __init__(self, model: nn.Module, trainable: bool = True, name: str = "", weights_id: str = "") -> None:
        super().__init__()
        self.model = model
        self.name, self.weights_id, self.trainable = name, weights_id, bool(trainable)
        for prm in self.model.parameters():
            prm.requires_grad_(self.trainable)

    @staticmethod
    def _identity(p: Path) -> tuple[str, str]:
        from soundseek.encoders.text import _dir_identity

        return f"{p.parent.name}/{p.name}", _dir_identity(p)

    def config(self) -> dict:
        return {**super().config(), "family": self.family, "model": self.name, "weights": self.weights_id}


class Wav2Vec2StyleEncoder(HFAudioEncoder):
    """``Wav2Vec2Model`` / ``HubertModel`` / ``WavLMModel``: waves -> last hidden states (B, T, D)."""

    family = "hf-wav2vec2"
    MODEL_TYPES = {"hf-wav2vec2": ("wav2vec2",), "hf-hubert": ("hubert",), "hf-wavlm": ("wavlm",)}

    def __init__(self, model: nn.Module, do_normalize: bool, sample_rate: int, **kw) -> None:
        super().__init__(model, **kw)
        self.do_normalize = bool(do_normalize)
        self.sample_rate = int(sample_rate)
        self.out_dim = int(model.config.hidden_size)
        self.per_clip = getattr(model.config, "feat_extract_norm", "layer") == "group"
        self.min_samples = self._min_samples()

    @classmethod
    def from_pretrained(cls, path, family: str = "hf-wav2vec2", trainable: bool = True) -> "Wav2Vec2StyleEncoder":
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        p = _local(path, family)
        mtype = AutoConfig.from_pretrained(str(p), local_files_only=True).model_type
        if mtype not in cls.MODEL_TYPES[family]:
            raise ValueError(f"{p} holds a {mtype!r} model, not {'/'.join(cls.MODEL_TYPES[family])} ({family})")
        fe = load_feature_extractor(AutoFeatureExtractor, p)
        name, wid = cls._identity(p)
        enc = cls(_load(AutoModel, p), do_normalize=getattr(fe, "do_normalize", True),
                  sample_rate=fe.sampling_rate, trainable=trainable, name=name, weights_id=wid)
        enc.family = family
        return enc

    def lock_groups(self) -> list[nn.Module]:
        """Front end (feature extractor, projection, positional conv; the encoder LayerNorm of
        post-norm checkpoints), then each transformer layer, the last with the final LayerNorm of
        pre-norm (``do_stable_layer_norm``) checkpoints."""
        enc = self.model.encoder
        stable = bool(getattr(self.model.config, "do_stable_layer_norm", False))
        head = [m for n, m in self.model.named_children() if n != "encoder"]
        head += [m for n, m in enc.named_children() if n != "layers" and (n != "layer_norm" or not stable)]
        layers = list(enc.layers)
        last = nn.ModuleList([layers[-1]] + ([enc.layer_norm] if stable else []))
        return [nn.ModuleList(head), *layers[:-1], last]

    def _min_samples(self) -> int:
        n = 1
        for k, s in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            n = (n - 1) * s + k
        return n

    def out_lengths(self, n: Tensor) -> Tensor:
        return self.model._get_feat_extract_output_lengths(n).long()

    def normalize(self, wave: Tensor, n_valid: Tensor) -> Tensor:
        """Zero mean / unit variance over each row's valid samples (population variance), padding 0."""
        m = (torch.arange(wave.shape[1], device=wave.device)[None] < n_valid[:, None]).to(wave.dtype)
        cnt = n_valid.clamp_min(1).to(wave.dtype)[:, None]
        mean = (wave * m).sum(1, keepdim=True) / cnt
        var = (((wave - mean) * m) ** 2).sum(1, keepdim=True) / cnt
        return (wave - mean) / torch.sqrt(var + 1e-7) * m

    def forward(self, wave: Tensor, wave_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        n_valid = torch.tensor(valid_lengths(wave, wave_mask), device=wave.device)
        if wave.shape[1] < self.min_samples:
            wave = F.pad(wave, (0, self.min_samples - wave.shape[1]))
        x = self.normalize(wave, n_valid) if self.do_normalize else wave * (
            torch.arange(wave.shape[1], device=wave.device)[None] < n_valid[:, None])
        n_in = n_valid.clamp_min(self.min_samples)
        lengths = self.out_lengths(n_in)
        if self.per_clip:
            outs = [self.model(x[i:i + 1, : int(n_in[i])]).last_hidden_state[0] for i in range(x.shape[0])]
            t = max(o.shape[0] for o in outs)
            frames = outs[0].new_zeros((len(outs), t, self.out_dim))
            for i, o in enumerate(outs):
                frames[i, : o.shape[0]] = o
        else:
            am = (torch.arange(x.shape[1], device=x.device)[None] < n_in[:, None]).long()
            frames = self.model(x, attention_mask=am).last_hidden_state
        mask = torch.arange(frames.shape[1], device=frames.device)[None] < lengths[:, None]
        mask &= (n_valid > 0)[:, None]
        return frames * mask[..., None].to(frames.dtype), mask


def _kaldi_filters(sample_rate: int, n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """The Kaldi-style filter bank and window ``ASTFeatureExtractor`` builds when torchaudio is
    absent (the same fbank that torchaudio's Kaldi compliance module computes)."""
    from transformers.audio_utils import mel_filter_bank, window_function

    fb = mel_filter_bank(num_frequency_bins=257, num_mel_filters=n_mels, min_frequency=20,
                         max_frequency=sample_rate // 2, sampling_rate=sample_rate, norm=None,
                         mel_scale="kaldi", triangularize_in_mel_space=True)
    return fb, window_function(400, "hann", periodic=False)


class ASTEncoder(HFAudioEncoder):
    """``ASTModel``: waves at 16 kHz -> frequency-averaged patch tokens (B, T', D)."""

    family = "hf-ast"

    def __init__(self, model: nn.Module, feature_extractor, **kw) -> None:
        super().__init__(model, **kw)
        fe, cfg = feature_extractor, model.config
        mel_filters, window = getattr(fe, "mel_filters", None), getattr(fe, "window", None)
        if mel_filters is None:  # torchaudio installed: the extractor kept no numpy filter bank
            mel_filters, window = _kaldi_filters(int(fe.sampling_rate), int(fe.num_mel_bins))
        self.sample_rate = int(fe.sampling_rate)
        self.max_frames, self.n_mels = int(fe.max_length), int(fe.num_mel_bins)
        if (self.max_frames, self.n_mels) != (int(cfg.max_length), int(cfg.num_mel_bins)):
            raise ValueError(f"preprocessor (max_length {self.max_frames}, {self.n_mels} mels) does not fit the model "
                             f"(max_length {cfg.max_length}, {cfg.num_mel_bins} mels)")
        self.do_normalize, self.mean, self.std = bool(fe.do_normalize), float(fe.mean), float(fe.std)
        self.register_buffer("mel_fb", torch.as_tensor(np.asarray(mel_filters), dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.as_tensor(np.asarray(window), dtype=torch.float32), persistent=False)
        self.patch, self.fstride, self.tstride = int(cfg.patch_size), int(cfg.frequency_stride), int(cfg.time_stride)
        self.f_out = (self.n_mels - self.patch) // self.fstride + 1
        self.t_out = (self.max_frames - self.patch) // self.tstride + 1
        self.out_dim = int(cfg.hidden_size)
        self.max_samples = 400 + 160 * (self.max_frames - 1)

    @classmethod
    def from_pretrained(cls, path, trainable: bool = True) -> "ASTEncoder":
        from transformers import ASTFeatureExtractor, ASTModel

        p = _local(path, cls.family)
        name, wid = cls._identity(p)
        return cls(_load(ASTModel, p), load_feature_extractor(ASTFeatureExtractor, p),
                   trainable=trainable, name=name, weights_id=wid)

    def lock_groups(self) -> list[nn.Module]:
        """Patch embedding, then each transformer layer (the last with the final LayerNorm)."""
        m = self.model
        layers = list(m.layers if hasattr(m, "layers") else m.encoder.layer)  # transformers 5 / 4 layouts
        return [m.embeddings, *layers[:-1], nn.ModuleList([layers[-1], m.layernorm])]

    def fbank(self, wave: Tensor) -> Tensor:
        """(n,) -> (1 + (n - 400) // 160, n_mels) log-mel fbank (``ASTFeatureExtractor`` without torchaudio)."""
        x = wave.float()
        if x.shape[0] < 400:
            x = F.pad(x, (0, 400 - x.shape[0]))
        fr = x.unfold(0, 400, 160)  # (T, 400)
        fr = fr - fr.mean(dim=1, keepdim=True)
        fr = torch.cat([fr[:, :1] * (1 - 0.97), fr[:, 1:] - 0.97 * fr[:, :-1]], dim=1)
        spec = torch.fft.rfft(fr * self.window, n=512).abs() ** 2  # (T, 257)
        return torch.log((spec @ self.mel_fb).clamp_min(1.192092955078125e-07))

    def _inputs(self, wave: Tensor) -> tuple[Tensor, int]:
        fb = self.fbank(wave)[: self.max_frames]
        n = fb.shape[0]
        fb = F.pad(fb, (0, 0, 0, self.max_frames - n))
        if self.do_normalize:
            fb = (fb - self.mean) / (self.std * 2)
        return fb, n

    def _encode_window(self, segs: Tensor, smask: Tensor) -> tuple[Tensor, Tensor]:
        feats, counts = zip(*[self._inputs(s[: int(m.sum())]) for s, m in zip(segs, smask)])
        out = self.model(input_values=torch.stack(feats)).last_hidden_state[:, 2:]  # (S, F' T', D)
        out = out.reshape(out.shape[0], self.f_out, self.t_out, self.out_dim).mean(dim=1)  # (S, T', D)
        valid = torch.tensor([max(1, (c - self.patch) // self.tstride + 1) if c >= self.patch else 1 for c in counts])
        mask = torch.arange(self.t_out)[None] < valid[:, None]
        mask &= smask.any(dim=1)[:, None].cpu()
        return out, mask.to(out.device)

    def forward(self, wave: Tensor, wave_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return encode_in_segments(self._encode_window, wave, valid_lengths(wave, wave_mask), self.sample_rate,
                                  self.max_samples, self.out_dim)


class WhisperEncoder(HFAudioEncoder):
    """The Whisper encoder: waves at 16 kHz -> last hidden states (B, T, D), 20 ms per frame."""

    family = "hf-whisper"

    def __init__(self, encoder: nn.Module, feature_extractor, **kw) -> None:
        super().__init__(encoder, **kw)
        fe = feature_extractor
        self.sample_rate, self.n_fft, self.hop = int(fe.sampling_rate), int(fe.n_fft), int(fe.hop_length)
        self.max_samples = int(fe.n_samples)
        self.register_buffer("mel_fb", torch.as_tensor(np.asarray(fe.mel_filters), dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.out_dim = int(encoder.config.d_model)
        self.frames = int(encoder.config.max_source_positions)
        if int(fe.nb_max_frames) != 2 * self.frames:
            raise ValueError(f"preprocessor chunk ({fe.nb_max_frames} frames) does not fit the encoder "
                             f"(max_source_positions {self.frames} x 2)")

    @classmethod
    def from_pretrained(cls, path, trainable: bool = True) -> "WhisperEncoder":
        from transformers import WhisperFeatureExtractor, WhisperModel

        p = _local(path, cls.family)
        name, wid = cls._identity(p)
        return cls(_load(WhisperModel, p).get_encoder(), load_feature_extractor(WhisperFeatureExtractor, p),
                   trainable=trainable, name=name, weights_id=wid)

    def lock_groups(self) -> list[nn.Module]:
        """Convolutional stem and positions, then each transformer layer (the last with the final
        LayerNorm)."""
        m = self.model
        layers = list(m.layers)
        return [nn.ModuleList([m.conv1, m.conv2, m.embed_positions]), *layers[:-1],
                nn.ModuleList([layers[-1], m.layer_norm])]

    def log_mel(self, segs: Tensor) -> Tensor:
        """(S, n_samples) zero-padded windows -> (S, n_mels, 2 * max_source_positions)."""
        stft = torch.stft(segs.float(), self.n_fft, self.hop, window=self.window, return_complex=True)
        mag = stft[..., :-1].abs() ** 2
        spec = torch.clamp(self.mel_fb.T @ mag, min=1e-10).log10()
        spec = torch.maximum(spec, spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (spec + 4.0) / 4.0

    def _encode_window(self, segs: Tensor, smask: Tensor) -> tuple[Tensor, Tensor]:
        segs = segs * smask.to(segs.dtype)
        out = self.model(self.log_mel(segs)).last_hidden_state  # (S, T, D)
        n = smask.sum(dim=1)
        valid = torch.clamp(torch.ceil(n / (2 * self.hop)), 1, out.shape[1]).long()
        mask = (torch.arange(out.shape[1], device=out.device)[None] < valid[:, None]) & (n > 0)[:, None]
        return out, mask

    def forward(self, wave: Tensor, wave_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return encode_in_segments(self._encode_window, wave, valid_lengths(wave, wave_mask), self.sample_rate,
                                  self.max_samples, self.out_dim)


def build(family: str, path=None, trainable: bool = True) -> HFAudioEncoder:
    """A registered Hugging Face audio encoder by family name (hf-ast, hf-wav2vec2, hf-hubert, hf-wavlm, hf-whisper)."""
    if family == "hf-ast":
        return ASTEncoder.from_pretrained(path, trainable=trainable)
    if family == "hf-whisper":
        return WhisperEncoder.from_pretrained(path, trainable=trainable)
    if family in Wav2Vec2StyleEncoder.MODEL_TYPES:
        return Wav2Vec2StyleEncoder.from_pretrained(path, family=family, trainable=trainable)
    raise KeyError(f"Invalid Hugging Face audio family {family!r}. Valid: hf-ast, hf-hubert, hf-wav2vec2, hf-wavlm, "
                   "hf-whisper")


__all__ = ["ASTEncoder", "HFAudioEncoder", "Wav2Vec2StyleEncoder", "WhisperEncoder", "build"]
