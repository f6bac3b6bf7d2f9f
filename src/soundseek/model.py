"""The retrieval model trained on cached encoder outputs: a scorer (pooling, heads, pair
scores) plus a loss (which may own a learnable temperature/bias).

One interface for every scorer (METHODS §4-5, §8): ``encode_text`` / ``encode_audio`` give
per-caption / per-clip representations (dicts of tensors), ``score`` all pairs.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from soundseek.train.config import Config, check_options


class RetrievalModel(nn.Module):
    def __init__(self, scorer: nn.Module, loss: nn.Module, nuclear_norm: float = 0.0) -> None:
        super().__init__()
        self.scorer = scorer
        self.loss = loss
        self.nuclear_norm = nuclear_norm

    @classmethod
    def from_config(cls, cfg: Config, audio_dim: int, text_dim: int) -> "RetrievalModel":
        from soundseek.losses import LOSSES
        from soundseek.scoring import SCORERS

        scorer_cls = SCORERS.get(cfg.model.scorer)
        check_options(scorer_cls, cfg.model.options, "model.options", reserved=("audio_dim", "text_dim", "embed_dim"))
        scorer = scorer_cls(audio_dim=audio_dim, text_dim=text_dim, embed_dim=cfg.model.embed_dim, **cfg.model.options)
        loss_cls = LOSSES.get(cfg.loss.name)
        check_options(loss_cls, cfg.loss.options, "loss.options")
        return cls(scorer, loss_cls(**cfg.loss.options), cfg.model.nuclear_norm)

    # -- representations -------------------------------------------------------------
    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor, sentence: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.scorer.encode_text(tokens, mask, sentence)

    def encode_audio(self, frames: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.scorer.encode_audio(frames, mask)

    def score(self, text: dict, audio: dict, chunk: int | None = None) -> torch.Tensor:
        return self.scorer.score(text, audio, chunk=chunk)  # (Bt, Ba)

    # -- training ----------------------------------------------------------------------
    def forward(self, text: dict, audio: dict, clip_ids: torch.Tensor) -> torch.Tensor:
        """Loss of a batch of aligned (caption i, clip i) pairs."""
        loss = self.loss(self.score(text, audio), clip_ids)
        if self.nuclear_norm:
            loss = loss + self.nuclear_norm * self.regulariser()
        return loss

    def regulariser(self) -> torch.Tensor:
        terms = [m.nuclear_norm() for m in self.modules() if m is not self and hasattr(m, "nuclear_norm") and callable(m.nuclear_norm)]
        return torch.stack(terms).sum() if terms else torch.zeros(())

    @torch.no_grad()
    def after_step(self) -> None:
        """Projections that keep constrained parameters feasible (Mahalanobis PSD, METHODS §6)."""
        for m in self.modules():
            proj = getattr(m, "project_", None)
            if m is not self and callable(proj):
                proj()

    def temperature(self) -> float:
        """The loss's temperature (1 / logit scale) for SK correction; 1.0 if it has none."""
        loss = self.loss
        for name in ("temperature", "tau"):
            t = getattr(loss, name, None)
            if callable(t):
                t = t()
            if t is not None:
                return float(t.detach()) if torch.is_tensor(t) else float(t)
        scale = getattr(loss, "logit_scale", None)
        if scale is not None:
            return float(1.0 / torch.as_tensor(scale).detach().exp())
        return 1.0

    def param_groups(self, base_lr: float, groups: dict[str, float]) -> list[dict[str, Any]]:
        """Parameter groups with per-module learning rates (``optim.lr_groups``)."""
        valid = [n for n, _ in self.named_children()]
        for key in groups:
            if key not in valid:
                from soundseek.config import ConfigError

                raise ConfigError(f"Unknown lr group {key!r}. Valid: {', '.join(valid)}")
        out = []
        for name, child in self.named_children():
            params = [p for p in child.parameters() if p.requires_grad]
            if params:
                out.append({"params": params, "lr": groups.get(name, base_lr), "name": name})
        return out
