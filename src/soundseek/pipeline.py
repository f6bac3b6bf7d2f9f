"""Raw audio / text -> embeddings with a trained model: the frozen encoders plus the trained
scorer, as one object. Implements the index's ``Embedder`` protocol (``soundseek.index``).

Weights come only from local files or installed packages: :meth:`Pipeline.from_checkpoint`
takes a checkpoint path, :meth:`Pipeline.default` the small model shipped in the package.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from soundseek.model import RetrievalModel
from soundseek.train.config import Config

DEFAULT_CHECKPOINT = Path(__file__).parent / "assets" / "default.pt"


class Pipeline:
    def __init__(self, model: RetrievalModel, cfg: Config, audio_encoder, text_encoder, checkpoint: str = "") -> None:
        self.model = model.eval()
        self.cfg = cfg
        self.audio_encoder = audio_encoder.eval()
        self.text_encoder = text_encoder.eval()
        self.checkpoint = checkpoint
        self.sample_rate = int(audio_encoder.sample_rate)
        self.max_seconds = cfg.data.max_seconds

    # -- constructors -------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "Pipeline":
        from soundseek.train.data import build_encoders
        from soundseek.train.loop import load_model

        model, cfg, _ = load_model(path)
        audio, text = build_encoders(cfg)
        return cls(model, cfg, audio, text, checkpoint=str(path))

    @classmethod
    def default(cls) -> "Pipeline":
        if not DEFAULT_CHECKPOINT.is_file():
            raise FileNotFoundError(
                f"The default model is not in this installation ({DEFAULT_CHECKPOINT.name}); "
                "rebuild it with `bash scripts/train_default_model.sh` or pass --model CHECKPOINT"
            )
        return cls.from_checkpoint(DEFAULT_CHECKPOINT)

    @classmethod
    def load(cls, model: str | Path | None = None) -> "Pipeline":
        return cls.default() if model in (None, "", "default") else cls.from_checkpoint(model)

    # -- Embedder protocol --------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.cfg.model.embed_dim)

    def fingerprint(self, audio_config: dict | None = None) -> str:  # audio_config: e.g. previous_configs()
        h = hashlib.sha1()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(repr(self.audio_encoder.config() if audio_config is None else audio_config).encode())
        h.update(repr((self.cfg.encoders.text, self.cfg.encoders.text_path, self.cfg.encoders.text_pooling)).encode())
        return h.hexdigest()[:20]

    @torch.inference_mode()
    def audio_frames(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """Frozen-encoder frame features (T_i, F) of waveforms at ``self.sample_rate``."""
        from soundseek.audio.io import batch_waves

        max_len = int(self.max_seconds * self.sample_rate)
        waves = [np.asarray(w, dtype=np.float32)[:max_len] for w in waves]
        x, mask = batch_waves(waves)
        frames, fmask = self.audio_encoder(x, mask)
        return [frames[i][fmask[i]].float().numpy() for i in range(len(waves))]

    @torch.inference_mode()
    def audio_repr(self, frames: list[np.ndarray]) -> dict[str, torch.Tensor]:
        t = max(f.shape[0] for f in frames)
        x = torch.zeros(len(frames), t, frames[0].shape[1])
        m = torch.zeros(len(frames), t, dtype=torch.bool)
        for i, f in enumerate(frames):
            x[i, : f.shape[0]] = torch.as_tensor(np.asarray(f, dtype=np.float32))
            m[i, : f.shape[0]] = True
        return self.model.encode_audio(x, m)

    @torch.inference_mode()
    def text_repr(self, texts: list[str]) -> dict[str, torch.Tensor]:
        feats = self.text_encoder(list(texts))
        return self.model.encode_text(feats.tokens, feats.mask, feats.sentence)

    def embed_audio(self, waves: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        frames = self.audio_frames(waves)
        rep = self.audio_repr(frames)
        return _emb(rep), [f.astype(np.float16) for f in frames]

    def embed_text(self, texts: list[str]) -> np.ndarray:
        return _emb(self.text_repr(texts))

    @torch.inference_mode()
    def rerank(self, text: str, frames: list[np.ndarray]) -> np.ndarray | None:
        """Pair-wise scores of one query against candidate clips (TAP/GPA); None for global scorers."""
        if self.cfg.model.scorer == "global" or not frames:
            return None
        return self.model.score(self.text_repr([text]), self.audio_repr(frames))[0].float().numpy()

    @torch.inference_mode()
    def score_texts(self, texts: list[str], frames: list[np.ndarray]) -> np.ndarray:
        """(n_texts, n_clips) scores with the model's own scorer."""
        return self.model.score(self.text_repr(texts), self.audio_repr(frames)).float().numpy()


def _emb(rep: dict[str, torch.Tensor]) -> np.ndarray:
    if "emb" not in rep:
        raise ValueError("This scorer has no global embedding to index; use a global or GPA model for search")
    return torch.nn.functional.normalize(rep["emb"].float(), dim=-1).numpy()
