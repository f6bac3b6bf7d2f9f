"""Raw audio / text -> embeddings with a trained model: a thin wrapper over
:class:`soundseek.models.RetrievalModel` (towers + scorer) that takes numpy arrays, file
paths and strings. Implements the index's ``Embedder`` protocol (``soundseek.index``).

Weights come only from local files or installed packages: :meth:`Pipeline.load` takes
``"default"`` (the small model shipped in the package), a checkpoint path or a ``family:PATH``
spec (e.g. ``hf-clap:DIR``, a Hugging Face CLAP directory).

Example::

    pipe = Pipeline.load("default")
    q = pipe.embed_text("a dog barks")                       # (dim,) for one caption
    emb, frames = pipe.embed_audio(["rain.wav", "door.flac"])  # (2, dim) + frame features
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from soundseek.models import DEFAULT_CHECKPOINT, RetrievalModel  # noqa: F401  (re-exported)
from soundseek.models.config import Config


class Pipeline:
    def __init__(self, model: RetrievalModel, cfg: Config | None = None, checkpoint: str = "") -> None:
        if model.audio_encoder is None or model.text_encoder is None:
            raise ValueError("Pipeline needs a model with both towers (soundseek.models.load / create_model)")
        self.model = model.eval()
        self.cfg = cfg if cfg is not None else model.cfg
        self.checkpoint = checkpoint
        self.sample_rate = int(model.sample_rate)
        self.max_seconds = self.cfg.data.max_seconds

    @property
    def audio_encoder(self):
        return self.model.audio_encoder

    @property
    def text_encoder(self):
        return self.model.text_encoder

    @property
    def window_seconds(self) -> float:
        """The length the model embeds as one clip, the default window for moments in long files:
        the audio tower's own (``clip_seconds``, e.g. CLAP's 10 s input, while files are decoded
        up to ``max_seconds``), else ``max_seconds``."""
        return float(getattr(self.audio_encoder, "clip_seconds", None) or self.max_seconds)

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def load(cls, model: str | Path | None = None) -> "Pipeline":
        """``"default"`` (or None) for the shipped model, a checkpoint path, or ``family:PATH``
        for a pretrained model in a local directory (e.g. ``hf-clap:models/clap-htsat-unfused``)."""
        from soundseek.models.factory import load, resolve
        from soundseek.models.spec import parse_model_spec

        return cls(load(model), checkpoint=str(model) if parse_model_spec(model) else str(resolve(model)))

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "Pipeline":
        return cls.load(Path(path))

    @classmethod
    def default(cls) -> "Pipeline":
        return cls.load("default")

    # -- Embedder protocol --------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.cfg.model.embed_dim)

    def fingerprint(self, audio_config: dict | None = None) -> str:
        """Identifies the weights (trained parts and the frozen towers' sources) and preprocessing.
        ``audio_config`` replaces the audio encoder's own config (e.g. an earlier computation
        version from ``previous_configs()``, to recognise indexes built before it)."""
        from soundseek.models.factory import model_state

        h = hashlib.sha1()
        for k, v in sorted(model_state(self.model).items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(self.audio_encoder.config() if audio_config is None else audio_config).encode())
        enc = self.cfg.encoders
        h.update(repr((enc.text, enc.text_path, enc.text_pooling)).encode())
        return h.hexdigest()[:20]

    @torch.inference_mode()
    def audio_frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Audio-tower frame features (T_i, F) of waveforms at ``self.sample_rate``."""
        from soundseek.audio.io import batch_waves

        max_len = int(self.max_seconds * self.sample_rate)
        waves = [np.asarray(w, dtype=np.float32)[:max_len] for w in waves]
        x, mask = batch_waves(waves)
        dev = self.model.device
        frames, fmask = self.model.audio_features(x.to(dev), mask.to(dev))
        return [frames[i][fmask[i]].float().cpu().numpy() for i in range(len(waves))]

    @torch.inference_mode()
    def audio_repr(self, frames: list[np.ndarray]) -> dict[str, torch.Tensor]:
        from soundseek.padding import pad_sequences

        x, m = pad_sequences([np.asarray(f, dtype=np.float32) for f in frames])
        dev = self.model.device
        return self.model.encode_audio(x.to(dev), m.to(dev))

    @torch.inference_mode()
    def text_repr(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.model.encode_captions(list(texts))

    def embed_audio(self, audio: Any, sr: int | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Embed clips.

        Args:
            audio: a list of file paths (str / Path, decoded and resampled, the first
                ``max_seconds`` read) and/or mono float waveforms ((n,) arrays or tensors), or one
                path / waveform.
            sr: sample rate of the given waveforms (default: ``self.sample_rate``); they are
                resampled to ``self.sample_rate``.
        Returns:
            (n, dim) L2-normalised float32 embeddings ((dim,) for a single input) and each
            clip's frame features (T_i, F) float16.
        Raises:
            TypeError: an item is neither a path nor a waveform.
            ValueError: a waveform is not 1-D, empty, or ``sr`` is not a positive integer.
        """
        single = isinstance(audio, (str, Path)) or (hasattr(audio, "ndim") and audio.ndim == 1)
        waves = self._waves([audio] if single else audio, sr)
        if not waves:
            return np.zeros((0, self.dim), np.float32), []
        frames = self.audio_frames(waves)
        emb = _emb(self.audio_repr(frames))
        return (emb[0] if single else emb), [f.astype(np.float16) for f in frames]

    def embed_text(self, texts: str | Sequence[str]) -> np.ndarray:
        """One caption (str) -> (dim,); a list of n captions -> (n, dim); L2-normalised float32."""
        if isinstance(texts, str):
            return self.embed_text([texts])[0]
        if isinstance(texts, (bytes, np.ndarray)) or not isinstance(texts, Sequence):
            raise TypeError(f"embed_text expects a string or a list of strings, got {type(texts).__name__}")
        bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"embed_text expects strings, got {bad[0]} in the list")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return _emb(self.text_repr(list(texts)))

    def _waves(self, items: Any, sr: int | None) -> list[np.ndarray]:
        from soundseek.audio.io import load_audio, resample

        if isinstance(items, (bytes, dict)) or not hasattr(items, "__iter__"):
            raise TypeError(f"embed_audio expects file paths or waveforms, got {type(items).__name__}")
        if sr is not None and (isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0):
            raise ValueError(f"sr must be a positive integer sample rate, got {sr!r}")
        out = []
        for i, x in enumerate(items):
            if isinstance(x, (str, Path)):
                out.append(load_audio(x, self.sample_rate, max_seconds=self.max_seconds))
                continue
            if torch.is_tensor(x):
                x = x.detach().cpu().numpy()
            if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.number):
                raise TypeError(f"embed_audio item {i}: expected a path or a numeric waveform, got {type(x).__name__}")
            if x.ndim != 1:
                raise ValueError(f"embed_audio item {i}: expected a mono (n,) waveform, got shape {x.shape} "
                                 "(mix channels down first)")
            if x.size == 0:
                raise ValueError(f"embed_audio item {i}: empty waveform")
            x = x.astype(np.float32)
            if sr is not None and int(sr) != self.sample_rate:
                x = resample(x, int(sr), self.sample_rate)
            out.append(x)
        return out

    @torch.inference_mode()
    def rerank(self, text: str, frames: list[np.ndarray]) -> np.ndarray | None:
        """Pair-wise scores of one query against candidate clips (TAP/GPA); None for global scorers."""
        if self.cfg.model.scorer in ("global", "clap") or not frames:  # embedding-only scorers
            return None
        return self.model.score(self.text_repr([text]), self.audio_repr(frames))[0].float().cpu().numpy()


def _emb(rep: dict[str, torch.Tensor]) -> np.ndarray:
    if "emb" not in rep:
        raise ValueError("This scorer has no global embedding to index; use a global or GPA model for search")
    return torch.nn.functional.normalize(rep["emb"].float(), dim=-1).cpu().numpy()
