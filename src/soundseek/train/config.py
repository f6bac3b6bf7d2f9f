"""The typed training/evaluation configuration (YAML -> dataclasses, unknown keys rejected).

A recipe in ``configs/*.yaml`` sets any subset of these fields; everything else keeps the
defaults below, which are the offline default model (aisfx + MiniLM, global scorer, NT-Xent).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Literal

from soundseek.config import ConfigError


@dataclass
class DataConfig:
    path: str = ""  # corpus root / manifest; "" = the built-in synthetic corpus
    format: str = "auto"
    extra: list[str] = field(default_factory=list)  # more corpora merged in ("synthetic" = the built-in one)
    synthetic_clips: int = 600
    synthetic_seed: int = 0
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    split_seed: int = 0  # used only when the corpus has no splits of its own
    split_by: Literal["group", "id"] = "group"  # group: near-duplicate names never straddle splits
    extra_captions: str = ""  # side file of extra (e.g. LLM) captions for the train split
    noise: float = 0.0  # noisy-correspondence protocol: fraction of train captions shuffled
    max_seconds: float = 10.0  # audio read per clip
    cache_dir: str = ".soundseek-cache"

    def validate(self) -> None:
        if not 0.0 <= self.noise < 1.0:
            raise ConfigError(f"data.noise must be in [0, 1), got {self.noise}")
        if self.max_seconds <= 0:
            raise ConfigError("data.max_seconds must be > 0")


@dataclass
class EncoderConfig:
    audio: str = "aisfx"
    audio_checkpoint: str = ""  # local weights file for encoders that need one (PANNs)
    audio_options: dict[str, Any] = field(default_factory=dict)
    text: str = "minilm"
    text_path: str = ""  # local Hugging Face directory ("" = the encoder's packaged default)
    text_pooling: Literal["mean", "cls"] = "mean"
    max_tokens: int = 32
    batch_size: int = 16
    precision: Literal["fp32", "bf16"] = "fp32"  # feature extraction autocast
    cache_dtype: Literal["float16", "float32"] = "float16"  # stored frozen features


@dataclass
class ModelConfig:
    scorer: str = "global"
    embed_dim: int = 512
    options: dict[str, Any] = field(default_factory=lambda: {"pooling": "meanmax"})  # scorer constructor kwargs
    nuclear_norm: float = 0.0  # weight of the Mahalanobis nuclear-norm regulariser


@dataclass
class LossConfig:
    name: str = "ntxent"
    options: dict[str, Any] = field(default_factory=lambda: {"temperature": 0.05})  # loss constructor kwargs


@dataclass
class OptimConfig:
    optimizer: Literal["adamw", "adam"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_groups: dict[str, float] = field(default_factory=dict)  # {"scorer": .., "loss": ..}
    scheduler: Literal["cosine", "step", "none"] = "cosine"
    warmup_epochs: float = 1.0
    step_size: int = 20  # StepLR (Mei et al.: x0.1 every 20 epochs)
    gamma: float = 0.1
    grad_clip: float = 2.0


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    precision: Literal["fp32", "bf16"] = "fp32"
    spec_augment: bool = False  # time/feature masking of cached frames
    monitor: Literal["mAP10", "rsum"] = "mAP10"  # T2A mAP@10 or R1+R5+R10 of both directions
    out_dir: str = "runs/default"
    num_threads: int = 0  # 0 = leave torch's default
    tensorboard: bool = True
    progress: bool = True

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("train.epochs must be >= 1 and train.batch_size >= 2")


@dataclass
class EvalConfig:
    split: str = "test"
    chunk: int = 256  # captions per scoring chunk
    sk: bool = False  # Sinkhorn-Knopp A2T correction (bias from training-audio queries)
    sk_iter: int = 10
    sk_tau: float = 0.0  # 0 = the training temperature
    ot: bool = False  # also report OT-plan retrieval (m-LTM)
    ot_reg: float = 0.03


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def check_options(factory: Any, options: dict[str, Any], where: str, reserved: tuple[str, ...] = ()) -> None:
    """Reject option keys the constructor ``factory`` does not take, listing the valid ones."""
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    valid = [n for n in sig.parameters if n not in ("self", *reserved)]
    for key in options:
        if key not in valid:
            raise ConfigError(f"Unknown key {where}.{key!r}. Valid: {', '.join(valid)}")
