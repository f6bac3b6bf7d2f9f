"""The typed recipe: model, data, training and evaluation (YAML -> dataclasses, unknown keys
rejected). The library builds models from it (``soundseek.models.create_model``); the trainer
reads the rest.

A recipe in ``configs/*.yaml`` sets any subset of these fields; everything else keeps the
defaults below, which are the offline default model (aisfx + MiniLM, global scorer, NT-Xent).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from soundseek.config import ConfigError

__all__ = ["DataConfig", "EncoderConfig", "ModelConfig", "LossConfig", "OptimConfig", "TrainConfig", "EvalConfig",
           "Config"]


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
    # towers are frozen (and may be replaced by their feature cache) unless unlocked here;
    # *_unlocked_blocks > 0 keeps the last N blocks of a locked tower trainable (open_clip's lock_*)
    lock_audio: bool = True
    audio_unlocked_blocks: int = 0
    lock_text: bool = True
    text_unlocked_blocks: int = 0

    def validate(self) -> None:
        if self.audio_unlocked_blocks < 0 or self.text_unlocked_blocks < 0:
            raise ConfigError("encoders.audio_unlocked_blocks / text_unlocked_blocks must be >= 0")


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
    # ensemble distillation (METHODS §7): targets file of `soundseek distill`, weight, temperature
    distill: str = ""
    distill_weight: float = 0.5
    distill_temperature: float = 1.0


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
    layer_decay: float = 1.0  # layer-wise lr decay in trained towers: block i of n gets lr * decay^(n-1-i)


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when torch sees a GPU
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast of the step; fp16 (+GradScaler) on CUDA only
    spec_augment: bool = False  # time/freq masking: of cached frames, or of a trained audio tower's log-mels
    # training from raw audio/text: a trained tower always runs live; a frozen one reads the
    # feature cache unless cache_frozen is false (the same model, only slower)
    cache_frozen: bool = True
    crop_seconds: float = 0.0  # live audio: crop of each clip fed to the tower (0 = data.max_seconds)
    random_crop: bool = True  # live audio: random crop offset in training (the start in evaluation)
    gain_db: float = 0.0  # live audio: random gain in [-gain_db, gain_db] dB
    shift: float = 0.0  # live audio: random circular shift of up to this fraction of the clip
    mixup: float = 0.0  # live audio: probability of mixing a clip with another one of the batch
    num_workers: int = 0  # DataLoader worker processes decoding audio
    accumulate: int = 1  # gradient accumulation: micro-batches per optimiser step
    # with accumulate > 1: every micro-batch sees the whole batch's negatives (GradCache, Gao et
    # al. 2021: encode all micro-batches without gradients, take the loss of the whole batch,
    # then encode each micro-batch again to pass its embeddings' gradients on); one process only
    grad_cache: bool = False
    gradient_checkpointing: bool = False  # recompute trained towers' blocks in backward (less memory)
    # which pairs of a batch count as positives of each other: "clip" (the same clip only) or
    # "label" (also clips whose first captions are equal once case and spacing are ignored:
    # segments of one recording, the same label in two packages); never used as negatives
    positives_by: Literal["clip", "label"] = "clip"
    # start from the weights of this checkpoint (same heads; e.g. fine-tune a trained model on
    # new data, or tune a tower's last blocks under heads trained on cached features)
    init_from: str = ""
    monitor: Literal["mAP10", "rsum"] = "mAP10"  # T2A mAP@10 or R1+R5+R10 of both directions
    out_dir: str = "runs/default"
    num_threads: int = 0  # 0 = leave torch's default
    tensorboard: bool = True
    progress: bool = True

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ConfigError("train.epochs must be >= 1 and train.batch_size >= 2")
        if self.accumulate < 1 or self.batch_size // self.accumulate < 2:
            raise ConfigError("train.accumulate must be >= 1 and leave >= 2 pairs per micro-batch")
        if self.grad_cache and self.accumulate < 2:
            raise ConfigError("train.grad_cache needs train.accumulate >= 2 micro-batches")
        if self.crop_seconds < 0 or self.num_workers < 0 or not 0 <= self.mixup <= 1:
            raise ConfigError("train.crop_seconds and train.num_workers must be >= 0, train.mixup in [0, 1]")


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
