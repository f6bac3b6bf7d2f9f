"""Optimiser and learning-rate schedule (METHODS §7)."""
from __future__ import annotations

import math

import torch

from soundseek.models.config import OptimConfig


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_scheduler(opt: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int):
    """Per-step schedule: linear warm-up then cosine decay, or StepLR counted in epochs."""
    total = max(1, steps_per_epoch * epochs)
    warm = int(round(cfg.warmup_epochs * steps_per_epoch))

    def cosine(step: int) -> float:
        if step < warm:
            return (step + 1) / max(1, warm)
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    def step_lr(step: int) -> float:
        return cfg.gamma ** ((step // max(1, steps_per_epoch)) // cfg.step_size)

    fn = {"cosine": cosine, "step": step_lr, "none": lambda step: 1.0}[cfg.scheduler]
    return torch.optim.lr_scheduler.LambdaLR(opt, fn)
