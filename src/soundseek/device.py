"""One device per process and the autocast that follows its type (nanoGPT's habit).

``select_device("auto")`` is CUDA when torch sees a GPU (``cuda:LOCAL_RANK`` under torchrun
with NCCL), else the CPU; ``"cuda"`` without CUDA is a clear error, never a silent CPU run.
``autocast(device, precision)``: bf16 on CPU and CUDA, fp16 on CUDA only (with a GradScaler,
see :func:`grad_scaler`), fp32 = no autocast.
"""
from __future__ import annotations

import contextlib
import os

import torch

from soundseek.config import ConfigError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16", "fp16")


def select_device(name: str = "auto") -> torch.device:
    """The torch device for ``train.device`` (auto | cpu | cuda) in this process."""
    if name not in DEVICES:
        raise ConfigError(f"Invalid device {name!r}. Valid: {', '.join(DEVICES)}")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if name == "cuda":
            raise ConfigError(
                "train.device=cuda but torch sees no CUDA device (torch "
                f"{torch.__version__}, built with CUDA {torch.version.cuda}); use train.device=cpu or auto"
            )
        return torch.device("cpu")
    import torch.distributed as tdist

    if name == "auto" and tdist.is_available() and tdist.is_initialized() and tdist.get_backend() != "nccl":
        return torch.device("cpu")  # a gloo group on a GPU machine: keep tensors where gloo works
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())


def check_precision(precision: str, device: torch.device) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"Invalid precision {precision!r}. Valid: {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision fp16 (with a GradScaler) is for CUDA; use bf16 or fp32 on the CPU")


def autocast(device: torch.device, precision: str = "fp32"):
    """Autocast context for ``device``'s type at ``precision`` (a no-op context for fp32)."""
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler, enabled only for fp16 on CUDA."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16" and device.type == "cuda")


def module_device(module: torch.nn.Module) -> torch.device:
    """Where a module's parameters (or buffers) live; the CPU for a module without tensors."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")
