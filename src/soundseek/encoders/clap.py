"""CLAP (LAION-CLAP in the Hugging Face ``ClapModel`` layout) from a local directory.

The towers and their loader; the recipe of the whole search model (``hf-clap:PATH``) is
``soundseek.models.clap.clap_config``. Three uses, one loader:

* **search model** (``--model hf-clap:PATH``): :class:`ClapAudioEncoder` with
  ``output="embedding"`` gives one *frame* per analysis window — the projected window embedding
  ``audio_projection(audio_model(...).pooler_output)`` — and the ``clap`` scorer
  (:class:`soundseek.scoring.clap.ClapScorer`) turns them into
  ``get_audio_features``: L2-normalised (several windows: the normalised mean of the normalised
  window embeddings). Text: ``get_text_features`` (``text_projection`` of the pooled first token),
  normalised. Scores are cosines; the logit scale is the model's (``logit_scale_a`` /
  ``logit_scale_t``).
* **towers** to train or freeze (``output="frames"``): frame-level audio features (B, T, D) with
  frame masks — the final HTSAT feature map averaged over frequency, one frame per time column,
  optionally passed through the audio projection frame by frame — and token-level text features
  (the projection applied to every token state), so TAP, GPA and every loss apply.
* **feature cache**: both encoders have ``config()`` (weights identity + options) like every
  other encoder.

Preprocessing is ``ClapFeatureExtractor``'s, re-done in torch (float32, one batched STFT for all
windows of a batch, the extractor's own filter banks) because it is the hot path of indexing and
training and the extractor works clip by clip in numpy (float64; the two agree to ~1e-4 dB):
48 kHz, periodic Hann window ``fft_window_size``, hop ``hop_length``, centred reflect padding,
power spectrogram, mel (``fusion``: HTK filters without norm; ``rand_trunc``:
Slaney filters), ``10 log10(max(x, 1e-10))``. Short clips are padded by the extractor's ``padding``
rule (``repeatpad``: whole repeats then zeros). The tokenizer stays the Hugging Face one (text
tokenisation is not a hot path and must match the checkpoint's vocabulary exactly).

Deterministic where the extractor is random (inference must not depend on a seed or on the batch):

* ``fusion`` on a clip longer than ``max_length_s``: the three local crops start at the *middle*
  candidate of each third of the admissible starts (the extractor draws them at random);
  ``is_longer`` is the clip's own flag (the extractor sets one random clip of an all-short batch
  to ``is_longer=True``, which makes a clip's embedding depend on its batch).
* ``rand_trunc`` (unfused checkpoints) on a long clip: instead of one random crop, windows of
  ``max_length_s`` starting every ``max_length_s``, the last one aligned to the clip's end
  (so every window is full, with no padding); the embedding is the normalised mean of the
  normalised window embeddings.
* Frame-level towers always window (non-overlapping ``max_length_s`` windows, the last one
  padded by the ``padding`` rule and masked to its valid frames); a window's frames cover
  ``max_length_s / T_w`` seconds each and a clip of n samples keeps ``ceil(n / max_samples * T_w)``
  frames of its (last) window.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from soundseek.encoders.base import AudioEncoder, valid_lengths
from soundseek.encoders.hf_load import (FEATURE_EXTRACTOR_LAYOUTS, feature_extractor_file, load_feature_extractor,
                                        load_local, require_local_dir)
from soundseek.encoders.text import TextFeatures, _dir_identity

FAMILY = "hf-clap"
HINT = ("config.json, the weights (model.safetensors or pytorch_model.bin), the feature extractor settings "
        "(processor_config.json or preprocessor_config.json) and the tokenizer files: the layout written by ClapModel.save_pretrained + ClapProcessor.save_pretrained")
OUTPUTS = ("embedding", "frames")


def clap_dir(path: str | Path) -> Path:
    """Check a local CLAP directory (never a hub id) and return it."""
    p = require_local_dir(path, FAMILY, HINT)
    if feature_extractor_file(p) is None:
        raise FileNotFoundError(f"{p} has no ClapFeatureExtractor settings ({FEATURE_EXTRACTOR_LAYOUTS}); "
                                f"the directory must hold {HINT}")
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
    if not any((p / w).is_file() for w in weights):
        raise FileNotFoundError(f"{p} has no weights ({', '.join(weights)}); the directory must hold {HINT}")
    if not any((p / t).is_file() for t in ("tokenizer.json", "vocab.json", "tokenizer_config.json")):
        raise FileNotFoundError(f"{p} has no tokenizer files (tokenizer.json or vocab.json + merges.txt); "
                                f"the directory must hold {HINT}")
    return p


def load_clap(path: str | Path):
    """(ClapModel in eval mode, ClapFeatureExtractor) from a local directory, ``local_files_only``."""
    from transformers import ClapFeatureExtractor, ClapModel

    p = clap_dir(path)
    model = load_local(ClapModel, p)
    fe = load_feature_extractor(ClapFeatureExtractor, p)
    return model.eval(), fe


def _set_trainable(module: nn.Module, trainable: bool) -> None:
    for prm in module.parameters():
        prm.requires_grad_(trainable)


class ClapAudioEncoder(AudioEncoder):
    """CLAP audio tower: waves at 48 kHz -> (frames (B, T, D), frame_mask (B, T)).

    Args:
        audio_model: ``ClapModel.audio_model`` (HTSAT).
        audio_projection: ``ClapModel.audio_projection``.
        feature_extractor: the checkpoint's ``ClapFeatureExtractor`` (settings and filter banks).
        output: ``"embedding"`` — one frame per analysis window, the projected window embedding
            (search model; D = projection_dim); ``"frames"`` — frame-level features (towers).
        project: with ``output="frames"``, apply the audio projection to every frame
            (D = projection_dim) or not (D = the HTSAT width).
        trainable: leave the weights trainable (the default, like every encoder: a trainer's
            lock decides) or freeze them (``requires_grad=False``).
        window_batch: analysis windows per model call (long files give many windows; this bounds
            the memory of one call).
    """

    def __init__(self, audio_model: nn.Module, audio_projection: nn.Module, feature_extractor,
                 output: str = "embedding", project: bool = True, trainable: bool = True,
                 name: str = "", weights_id: str = "", window_batch: int = 16) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"Invalid CLAP audio output {output!r}. Valid: {', '.join(OUTPUTS)}")
        fe = feature_extractor
        self.fusion = bool(audio_model.config.enable_fusion)
        if fe.truncation not in ("fusion", "rand_trunc"):
            raise ValueError(f"Unsupported ClapFeatureExtractor truncation {fe.truncation!r} (fusion, rand_trunc)")
        if (fe.truncation == "fusion") != self.fusion:
            raise ValueError(f"preprocessor truncation={fe.truncation!r} does not fit a model with "
                             f"enable_fusion={self.fusion} (fusion checkpoints use truncation='fusion')")
        if fe.padding not in ("repeatpad", "repeat", "pad"):
            raise ValueError(f"Unsupported ClapFeatureExtractor padding {fe.padding!r} (repeatpad, repeat, pad)")
        self.audio_model, self.audio_projection = audio_model, audio_projection
        self.output, self.project = output, bool(project)
        self.sample_rate = int(fe.sampling_rate)
        self.max_samples = int(fe.nb_max_samples)
        self.clip_seconds = self.max_samples / self.sample_rate  # one input window (max_length_s)
        self.hop, self.n_fft, self.padding = int(fe.hop_length), int(fe.fft_window_size), fe.padding
        self.n_mels = int(fe.feature_size)
        fb = fe.mel_filters if self.fusion else fe.mel_filters_slaney  # (n_fft // 2 + 1, n_mels)
        self.register_buffer("mel_fb", torch.as_tensor(np.asarray(fb), dtype=torch.float32), persistent=False)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        proj_dim = int(audio_projection.linear2.out_features)
        width = int(audio_model.config.hidden_size)
        self.out_dim = proj_dim if (output == "embedding" or self.project) else width
        self.name, self.weights_id = name, weights_id
        self.trainable = bool(trainable)
        if window_batch < 1:
            raise ValueError(f"window_batch must be >= 1, got {window_batch}")
        self.window_batch = int(window_batch)
        _set_trainable(self, self.trainable)

    @classmethod
    def from_pretrained(cls, path: str | Path, output: str = "embedding", project: bool = True,
                        trainable: bool = True, window_batch: int = 16) -> "ClapAudioEncoder":
        model, fe = load_clap(path)
        p = clap_dir(path)
        return cls(model.audio_model, model.audio_projection, fe, output=output, project=project,
                   trainable=trainable, name=f"{p.parent.name}/{p.name}", weights_id=_dir_identity(p),
                   window_batch=window_batch)

    def config(self) -> dict:
        return {**super().config(), "model": self.name, "weights": self.weights_id, "output": self.output,
                "project": self.project, "fusion": self.fusion, "padding": self.padding,
                "max_samples": self.max_samples}

    # -- preprocessing (ClapFeatureExtractor in torch) ------------------------------------------
    def log_mel(self, wave: Tensor) -> Tensor:
        """(..., n) waves -> (..., 1 + n // hop, n_mels) dB mel spectrograms (the extractor's)."""
        spec = torch.stft(wave.reshape(-1, wave.shape[-1]).float(), self.n_fft, self.hop, window=self.window,
                          center=True, pad_mode="reflect", return_complex=True).abs() ** 2  # (S, F, T)
        mel = (self.mel_fb.T @ spec).clamp_min(1e-10)  # (S, M, T)
        return (10.0 * torch.log10(mel)).transpose(1, 2).reshape(*wave.shape[:-1], -1, self.n_mels)

    def pad_window(self, wave: Tensor) -> Tensor:
        """A clip shorter than ``max_samples`` padded by the extractor's rule (empty: silence)."""
        n, L = wave.shape[0], self.max_samples
        if n == 0:
            return wave.new_zeros(L)
        if n < L:
            if self.padding == "repeat":
                wave = wave.repeat(int(L / n) + 1)[:L]
            elif self.padding == "repeatpad":
                wave = wave.repeat(int(L / n))
            wave = F.pad(wave, (0, L - wave.shape[0]))
        return wave

    def _fused_long(self, wave: Tensor) -> tuple[Tensor, bool]:
        """The extractor's fusion input of a clip longer than ``max_samples``, crops chosen
        deterministically (the middle candidate of each third)."""
        mel = self.log_mel(wave)
        chunk = self.max_samples // self.hop + 1
        total = mel.shape[0]
        if chunk == total:
            return mel.expand(4, *mel.shape), False
        ranges = np.array_split(np.arange(total - chunk + 1), 3)
        starts = [int(r[len(r) // 2]) if len(r) else 0 for r in ranges]
        shrink = F.interpolate(mel[None, None], size=[chunk, self.n_mels], mode="bilinear", align_corners=False)[0, 0]
        return torch.stack([shrink] + [mel[s:s + chunk] for s in starts]), True

    def clip_plan(self, wave: Tensor) -> list[tuple[Tensor, bool, int]]:
        """One clip's model inputs: [(x, is_longer, valid output frames)], x either a padded
        (max_samples,) window wave (its mel is computed batched) or a ready fused (4, T, M) mel."""
        n, L = wave.shape[0], self.max_samples
        if self.output == "frames":  # non-overlapping windows, the last padded and masked
            tw = self.frames_per_window()
            return [(self.pad_window(wave[s:s + L]), False, max(1, math.ceil(min(L, n - s) / L * tw)))
                    for s in range(0, max(n, 1), L)]
        if n <= L:
            return [(self.pad_window(wave), False, 1)]
        if self.fusion:
            mel, longer = self._fused_long(wave)
            return [(mel, longer, 1)]
        starts = list(range(0, n - L, L)) + [n - L]  # last window aligned to the end: all full
        return [(wave[s:s + L], False, 1) for s in starts]

    def _mels(self, items: list[tuple[Tensor, bool, int]]) -> Tensor:
        """(S, C, T, M) model inputs of planned items; window mels in one batched STFT."""
        wins = [k for k, (x, _, _) in enumerate(items) if x.dim() == 1]
        out: list[Tensor | None] = [x if x.dim() == 3 else None for x, _, _ in items]
        if wins:
            m = self.log_mel(torch.stack([items[k][0] for k in wins]))  # (W, T, M)
            m = m[:, None].expand(-1, 4, -1, -1) if self.fusion else m[:, None]
            for j, k in enumerate(wins):
                out[k] = m[j]
        return torch.stack(out)  # type: ignore[arg-type]

    def clip_inputs(self, wave: Tensor) -> list[tuple[Tensor, bool]]:
        """Model inputs of one clip: [(mel (C, T, M), is_longer)] (``ClapFeatureExtractor``'s
        ``input_features`` / ``is_longer``, made deterministic)."""
        plan = self.clip_plan(wave)
        return [(m, lg) for m, (_, lg, _) in zip(self._mels(plan), plan)]

    # -- model ---------------------------------------------------------------------------------
    def _run(self, mels: Tensor, longer: Tensor):
        kw = {"is_longer": longer[:, None].to(mels.device)} if self.fusion else {}
        return self.audio_model(input_features=mels, **kw)

    def _features(self, items: list[tuple[Tensor, bool, int]]) -> Tensor:
        """(S, T_w, D) outputs of planned windows (T_w = 1 for ``output="embedding"``)."""
        longer = torch.tensor([lg for _, lg, _ in items], dtype=torch.bool)
        out = self._run(self._mels(items), longer)
        if self.output == "embedding":
            return self.audio_projection(out.pooler_output)[:, None, :]  # (S, 1, P)
        feats = out.last_hidden_state.mean(dim=2).transpose(1, 2)  # (S, Tw, C): frequency-averaged map
        return self.audio_projection(feats) if self.project else feats

    def forward(self, wave: Tensor, wave_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """wave (B, N) at 48 kHz, prefix mask (B, N) -> (frames (B, T, D), mask (B, T))."""
        if wave.dim() != 2:
            raise ValueError(f"ClapAudioEncoder expects waves (B, N), got shape {tuple(wave.shape)}")
        n_valid = valid_lengths(wave, wave_mask)
        plans = [self.clip_plan(wave[i, : int(nv)]) for i, nv in enumerate(n_valid)]
        items = [it for p in plans for it in p]
        feats = torch.cat([self._features(items[s:s + self.window_batch])
                           for s in range(0, len(items), self.window_batch)])
        seqs, k = [], 0
        for p in plans:
            seqs.append(torch.cat([feats[k + j, :nf] for j, (_, _, nf) in enumerate(p)]))
            k += len(p)
        t = max(s.shape[0] for s in seqs)
        frames = feats.new_zeros((len(seqs), t, feats.shape[-1]))
        mask = torch.zeros(len(seqs), t, dtype=torch.bool, device=feats.device)
        for i, s in enumerate(seqs):
            frames[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = n_valid[i] > 0
        return frames, mask

    def lock_groups(self) -> list[nn.Module]:
        """Blocks in forward order, for freezing all but the last N: the input BatchNorm and patch
        embedding, then each HTSAT stage (the last with the final norm and the projection)."""
        enc = self.audio_model.audio_encoder
        stages = list(enc.layers)
        return [nn.ModuleList([enc.batch_norm, enc.patch_embed]), *stages[:-1],
                nn.ModuleList([stages[-1], enc.norm, self.audio_projection])]

    def frames_per_window(self) -> int:
        """T_w: frame-level outputs per ``max_length_s`` window (``freq_ratio`` x time columns)."""
        cfg = self.audio_model.config
        spec = cfg.spec_size if isinstance(cfg.spec_size, int) else cfg.spec_size[0]
        stride = cfg.patch_stride if isinstance(cfg.patch_stride, int) else cfg.patch_stride[1]
        return spec // 2 ** (len(cfg.depths) - 1) // stride * (spec // cfg.num_mel_bins)


class ClapTextEncoder(nn.Module):
    """CLAP text tower: captions -> TextFeatures(tokens (B, L, D), mask (B, L), sentence (B, D)).

    ``sentence`` is ``text_projection(text_model(...).pooler_output)`` (``get_text_features``
    before its normalisation); ``tokens`` are the last hidden states passed through the same
    projection token by token (``project_tokens``) so both share D = projection_dim, or the raw
    hidden states (then D = hidden size and ``sentence`` is the pooled first token, unprojected).
    The tokenizer is the checkpoint's own Hugging Face tokenizer; captions longer than
    ``max_length`` tokens (LAION-CLAP: 77) are cut.
    """

    def __init__(self, text_model: nn.Module, text_projection: nn.Module, tokenizer, max_length: int = 77,
                 project_tokens: bool = True, trainable: bool = True, name: str = "", weights_id: str = "") -> None:
        super().__init__()
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2, got {max_length}")
        self.text_model, self.text_projection, self.tokenizer = text_model, text_projection, tokenizer
        self.max_length, self.project_tokens = int(max_length), bool(project_tokens)
        self.out_dim = int(text_projection.linear2.out_features) if project_tokens else int(text_model.config.hidden_size)
        self.name, self.weights_id, self.trainable = name, weights_id, bool(trainable)
        _set_trainable(self, self.trainable)

    @classmethod
    def from_pretrained(cls, path: str | Path, max_length: int = 77, project_tokens: bool = True,
                        trainable: bool = True) -> "ClapTextEncoder":
        from transformers import AutoTokenizer, ClapModel

        p = clap_dir(path)
        model = load_local(ClapModel, p)
        tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        return cls(model.text_model, model.text_projection, tok, max_length=max_length, project_tokens=project_tokens,
                   trainable=trainable, name=f"{p.parent.name}/{p.name}", weights_id=_dir_identity(p))

    def lock_groups(self) -> list[nn.Module]:
        """Blocks in forward order: the embeddings, then each transformer layer (the last with the
        pooler and the projection)."""
        tm = self.text_model
        layers = list(tm.encoder.layer)
        tail = [m for m in (getattr(tm, "pooler", None), self.text_projection) if m is not None]
        return [tm.embeddings, *layers[:-1], nn.ModuleList([layers[-1], *tail])]

    def tokenize(self, captions: Sequence[str]) -> dict[str, Tensor]:
        if isinstance(captions, str):
            raise TypeError("ClapTextEncoder expects a list of captions, got a single string")
        enc = self.tokenizer(list(captions), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        dev = next(self.text_model.parameters()).device
        return {k: enc[k].to(dev) for k in ("input_ids", "attention_mask")}

    def forward(self, captions: Sequence[str]) -> TextFeatures:
        batch = self.tokenize(captions)
        out = self.text_model(**batch)
        mask = batch["attention_mask"].bool()
        if self.project_tokens:
            return TextFeatures(self.text_projection(out.last_hidden_state), mask,
                                self.text_projection(out.pooler_output))
        return TextFeatures(out.last_hidden_state, mask, out.pooler_output)

    def config(self) -> dict:
        return {"class": type(self).__name__, "model": self.name, "weights": self.weights_id,
                "max_length": self.max_length, "project_tokens": self.project_tokens, "out_dim": self.out_dim}


def read_logit_scales(p: Path) -> tuple[float, float]:
    """(logit_scale_a, logit_scale_t) from the weights file (safetensors or a weights_only .bin)."""
    st = sorted(p.glob("*.safetensors"))
    if st:
        from safetensors import safe_open

        for f in st:
            with safe_open(str(f), framework="pt") as h:
                keys = set(h.keys())
                if "logit_scale_a" in keys:
                    return float(h.get_tensor("logit_scale_a")), float(h.get_tensor("logit_scale_t"))
    for f in sorted(p.glob("pytorch_model*.bin")):
        sd = torch.load(f, map_location="cpu", weights_only=True)
        if "logit_scale_a" in sd:
            return float(sd["logit_scale_a"]), float(sd["logit_scale_t"])
    raise FileNotFoundError(f"{p}: no logit_scale_a/logit_scale_t in the weights (expected {HINT})")
