"""The dual-encoder retrieval model: audio tower, text tower, scorer (pooling, heads, pair
scores) and loss (which may own a learnable temperature/bias), as one ``nn.Module``.

Data flow (METHODS §3-6, §8)::

    waves (B, N) --audio_encoder--> frames (B, T, Da) --scorer.encode_audio--> audio rep
    captions     --text_encoder---> tokens (B, L, Dt) --scorer.encode_text---> text rep
    score(text rep, audio rep) -> (Bt, Ba) --loss--> scalar

``encode_audio`` / ``encode_text`` start from the towers' outputs (frames / tokens), so a
frozen tower may be replaced by its feature cache; ``encode_waves`` / ``encode_captions``
start from raw input. A locked tower (:meth:`lock_audio`, :meth:`lock_text`, open_clip's
``lock_*``) has ``requires_grad=False`` and stays in eval mode while the model trains, so its
outputs are those the cache holds: cached and live training are the same model.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

TOWERS = ("audio_encoder", "text_encoder")


def tower_blocks(tower: nn.Module) -> list[nn.Module]:
    """A tower's blocks in forward order, for unlocking the last N of them.

    A tower may say with ``lock_groups()``; otherwise the layers of a Hugging Face encoder
    (``model.encoder.layer``), a ``blocks`` list (ViTs, the small CNN) or the children that
    hold parameters, in registration order.
    """
    groups = getattr(tower, "lock_groups", None)
    if callable(groups):
        return list(groups())
    layers = getattr(getattr(getattr(tower, "model", None), "encoder", None), "layer", None)
    if isinstance(layers, (nn.ModuleList, nn.Sequential)):
        return list(layers)
    blocks = getattr(tower, "blocks", None)
    if isinstance(blocks, (nn.ModuleList, nn.Sequential)):
        return list(blocks)
    return [c for c in tower.children() if any(True for _ in c.parameters())]


def lock_tower(tower: nn.Module, unlocked_blocks: int = 0) -> None:
    """Freeze every parameter of ``tower`` except those of its last ``unlocked_blocks`` blocks."""
    if isinstance(unlocked_blocks, bool) or int(unlocked_blocks) < 0:
        raise ValueError(f"unlocked_blocks must be an integer >= 0, got {unlocked_blocks!r}")
    for p in tower.parameters():
        p.requires_grad_(False)
    if unlocked_blocks:
        blocks = tower_blocks(tower)
        if unlocked_blocks > len(blocks):
            raise ValueError(f"unlocked_blocks={unlocked_blocks} but {type(tower).__name__} has {len(blocks)} blocks")
        for b in blocks[-int(unlocked_blocks):]:
            for p in b.parameters():
                p.requires_grad_(True)


def is_trained(tower: nn.Module | None) -> bool:
    """True when any parameter of the tower is trainable."""
    return tower is not None and any(p.requires_grad for p in tower.parameters())


class RetrievalModel(nn.Module):
    """Audio tower + text tower + scorer + loss.

    Args:
        audio_encoder: waves -> frames (``soundseek.encoders``), or None for a heads-only model
            that is fed cached frames.
        text_encoder: captions -> ``TextFeatures``, or None (heads only).
        scorer: a ``soundseek.scoring`` scorer.
        loss: a ``soundseek.losses`` loss.
        nuclear_norm: weight of the Mahalanobis nuclear-norm regulariser (METHODS §6).

    The children are ``audio_encoder``, ``text_encoder``, ``scorer``, ``loss``: the keys of
    per-module learning rates (:meth:`param_groups`, ``optim.lr_groups``).
    """

    def __init__(self, audio_encoder: nn.Module | None, text_encoder: nn.Module | None, scorer: nn.Module,
                 loss: nn.Module, nuclear_norm: float = 0.0) -> None:
        super().__init__()
        self.audio_encoder = audio_encoder
        self.text_encoder = text_encoder
        self.scorer = scorer
        self.loss = loss
        self.nuclear_norm = nuclear_norm
        self.distill = None  # optional soundseek.losses.distill.DistillationLoss
        self.cfg = None  # the recipe it was built from (set by soundseek.models.create_model)

    # -- towers ------------------------------------------------------------------------
    def lock_audio(self, unlocked_blocks: int = 0) -> "RetrievalModel":
        """Freeze the audio tower (all but its last ``unlocked_blocks`` blocks)."""
        lock_tower(self._tower("audio_encoder"), unlocked_blocks)
        return self.train(self.training)

    def lock_text(self, unlocked_blocks: int = 0) -> "RetrievalModel":
        """Freeze the text tower (all but its last ``unlocked_blocks`` blocks)."""
        lock_tower(self._tower("text_encoder"), unlocked_blocks)
        return self.train(self.training)

    def trained_towers(self) -> dict[str, bool]:
        """{"audio_encoder": trainable?, "text_encoder": trainable?} (absent towers: False)."""
        return {n: is_trained(getattr(self, n)) for n in TOWERS}

    def train(self, mode: bool = True) -> "RetrievalModel":
        """Like ``nn.Module.train``, but frozen parts of the towers (every module whose
        parameters are all frozen) stay in eval mode: no dropout, no batch-norm updates."""
        super().train(mode)
        if mode:
            for n in TOWERS:
                tower = getattr(self, n)
                if tower is None:
                    continue
                for m in tower.modules():
                    params = list(m.parameters())
                    if params and not any(p.requires_grad for p in params):
                        m.eval()
        return self

    def _tower(self, name: str) -> nn.Module:
        tower = getattr(self, name)
        if tower is None:
            raise RuntimeError(f"This model has no {name} (heads only): build it with towers "
                               "(soundseek.models.create_model(cfg)) to encode raw audio/text")
        return tower

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sample_rate(self) -> int:
        return int(self._tower("audio_encoder").sample_rate)

    def audio_features(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio tower: wave (B, N), mask (B, N) -> frames (B, T, Da), frame mask (B, T)."""
        tower = self._tower("audio_encoder")
        param = next(tower.parameters(), None)
        if param is not None and wave.dtype != param.dtype:  # waves follow the tower's precision
            wave = wave.to(param.dtype)
        with torch.set_grad_enabled(torch.is_grad_enabled() and is_trained(tower)):
            return tower(wave, wave_mask)

    def text_features(self, captions: Sequence[str]):
        """Text tower: B captions -> TextFeatures(tokens (B, L, Dt), mask (B, L), sentence (B, Dt))."""
        tower = self._tower("text_encoder")
        with torch.set_grad_enabled(torch.is_grad_enabled() and is_trained(tower)):
            return tower(list(captions))

    # -- representations -------------------------------------------------------------
    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor, sentence: torch.Tensor) -> dict[str, torch.Tensor]:
        """Caption representations from the text tower's outputs."""
        return self.scorer.encode_text(tokens, mask, sentence)

    def encode_audio(self, frames: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Clip representations from the audio tower's outputs."""
        return self.scorer.encode_audio(frames, mask)

    def encode_captions(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        """Caption representations from raw text."""
        feats = self.text_features(captions)
        return self.encode_text(feats[0], feats[1], feats[2])

    def encode_waves(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Clip representations from raw waves (B, N) at ``sample_rate``."""
        return self.encode_audio(*self.audio_features(wave, wave_mask))

    def score(self, text: dict, audio: dict, chunk: int | None = None) -> torch.Tensor:
        return self.scorer.score(text, audio, chunk=chunk)  # (Bt, Ba)

    def ot_cost(self, scores: torch.Tensor) -> torch.Tensor:
        """Transport cost of a score matrix, as the scorer defines it (METHODS §8)."""
        return self.scorer.ot_cost(scores)

    # -- training ----------------------------------------------------------------------
    def forward(self, text: dict, audio: dict, clip_ids: torch.Tensor,
                teacher: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of a batch of aligned (caption i, clip i) pairs.

        In a torch.distributed group the batch is this rank's share of a global batch and the
        loss is that of the global batch: the other ranks' clips are gathered (with gradients)
        as negatives, this rank's captions are scored against every clip, and the score rows of
        all ranks are gathered into the global (B, B) matrix (see :mod:`soundseek.distributed`).
        ``clip_ids`` are then the global batch's ids (or the local ones, gathered); ``teacher``
        is the global batch's (B, B).
        """
        from soundseek import distributed as dist

        if dist.world_size() == 1:
            return self.objective(self.score(text, audio), clip_ids, teacher)
        clip_ids = dist.global_ids(clip_ids, next(iter(text.values())).shape[0])
        scores = dist.gather_with_grad(self.score(text, dist.gather_repr(audio)))  # (b_r, B) rows -> (B, B)
        return self.objective(scores, clip_ids, teacher)

    def objective(self, scores: torch.Tensor, clip_ids: torch.Tensor,
                  teacher: torch.Tensor | None = None) -> torch.Tensor:
        """The training objective of a (B, B) score matrix: loss plus regulariser; with
        ``teacher`` (B, B) ensemble logits and a ``distill`` term, mixed with distillation."""
        loss = self.loss(scores, clip_ids)
        if teacher is not None:
            if self.distill is None:
                raise ValueError("teacher logits given but the model has no distillation term (loss.distill)")
            loss = self.distill.combine(loss, scores * self.logit_scale_tensor(), teacher)
        if self.nuclear_norm:
            loss = loss + self.nuclear_norm * self.regulariser()
        return loss

    def regulariser(self) -> torch.Tensor:
        terms = [m.nuclear_norm() for m in self.scorer.modules() if hasattr(m, "nuclear_norm") and callable(m.nuclear_norm)]
        return torch.stack(terms).sum() if terms else torch.zeros((), device=self.device)

    @torch.no_grad()
    def after_step(self) -> None:
        """Projections that keep constrained parameters feasible (Mahalanobis PSD, METHODS §6)."""
        for m in self.scorer.modules():
            proj = getattr(m, "project_", None)
            if callable(proj):
                proj()

    def logit_scale_tensor(self) -> torch.Tensor | float:
        """The loss's live scale, differentiable when learnable (1.0 without one)."""
        scale = getattr(self.loss, "scale", None)
        return scale() if callable(scale) else 1.0

    def logit_scale(self) -> float:
        """The live multiplier the loss applies to scores (``exp(logit_scale)`` when learnable,
        ``1 / temperature`` when fixed); 1.0 for losses without one (triplet, m-LTM)."""
        scale = getattr(self.loss, "scale", None)
        if not callable(scale):
            return 1.0
        s = scale()
        return float(s.detach()) if torch.is_tensor(s) else float(s)

    def temperature(self) -> float:
        """The loss's current temperature ``1 / logit_scale`` (for the SK correction)."""
        return 1.0 / self.logit_scale()

    def param_groups(self, base_lr: float, groups: dict[str, float], layer_decay: float = 1.0) -> list[dict[str, Any]]:
        """Parameter groups with per-child learning rates (``optim.lr_groups``): keys are the
        children ``audio_encoder``, ``text_encoder``, ``scorer``, ``loss``.

        ``layer_decay`` < 1 (layer-wise learning-rate decay, as in BEiT / ELECTRA fine-tuning):
        in a trained tower of n blocks, block i gets ``lr * layer_decay^(n-1-i)`` and the
        parameters outside the blocks (front end, embeddings) ``lr * layer_decay^n``.
        """
        valid = [*TOWERS, "scorer", "loss"]
        for key in groups:
            if key not in valid:
                from soundseek.config import ConfigError

                raise ConfigError(f"Unknown lr group {key!r}. Valid: {', '.join(valid)}")
        if not 0 < layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
        out = []
        for name, child in self.named_children():
            lr = groups.get(name, base_lr)
            if name in TOWERS and layer_decay < 1:
                blocks = tower_blocks(child)
                seen: set[int] = set()
                for i, block in enumerate(blocks):
                    params = [p for p in block.parameters() if p.requires_grad and id(p) not in seen]
                    seen |= {id(p) for p in block.parameters()}
                    if params:
                        out.append({"params": params, "lr": lr * layer_decay ** (len(blocks) - 1 - i),
                                    "name": f"{name}.block{i}"})
                rest = [p for p in child.parameters() if p.requires_grad and id(p) not in seen]
                if rest:
                    out.append({"params": rest, "lr": lr * layer_decay ** len(blocks), "name": f"{name}.other"})
                continue
            params = [p for p in child.parameters() if p.requires_grad]
            if params:
                out.append({"params": params, "lr": lr, "name": name})
        return out

    def enable_gradient_checkpointing(self) -> None:
        """Recompute the trained towers' blocks in backward instead of storing their activations
        (Hugging Face towers through their own switch, others block by block)."""
        from torch.utils.checkpoint import checkpoint

        for name, trained in self.trained_towers().items():
            if not trained:
                continue
            tower = getattr(self, name)
            hf = getattr(tower, "model", None)
            if hasattr(hf, "activation_checkpointing_enable"):  # transformers >= 5
                hf.activation_checkpointing_enable()
                hf.config.use_cache = False
                continue
            if hasattr(hf, "gradient_checkpointing_enable"):
                hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                hf.config.use_cache = False
                continue
            for block in tower_blocks(tower):
                if getattr(block, "_checkpointed", False):
                    continue
                inner = block.forward

                def run(*args, _inner=inner, _block=block, **kw):
                    if _block.training and torch.is_grad_enabled():
                        return checkpoint(_inner, *args, use_reentrant=False, **kw)
                    return _inner(*args, **kw)

                block.forward = run
                block._checkpointed = True
