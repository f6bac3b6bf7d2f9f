"""Atomic, safe checkpoints: plain tensors and Python values only, loaded with ``weights_only=True``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "soundseek-checkpoint"
VERSION = 1


def atomic_write_bytes(path: Path, writer) -> None:
    """Run ``writer(file)`` on a temp file beside ``path`` and move it into place atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a soundseek checkpoint; refuses anything that is not plain tensors/values."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle with code, truncated file, not a torch file
        raise ValueError(f"{path} is not a loadable soundseek checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a soundseek checkpoint (no format tag {FORMAT!r})")
    if ckpt.get("version", 0) > VERSION:
        raise ValueError(f"{path} was written by a newer soundseek (version {ckpt['version']} > {VERSION})")
    return ckpt


def export_inference(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Copy a training checkpoint without optimiser/scheduler state (for shipping a model)."""
    ckpt = load_checkpoint(src)
    keep = {k: ckpt[k] for k in ("config", "config_hash", "audio_dim", "text_dim", "model", "epoch", "best", "history") if k in ckpt}
    keep["model"] = {k: v.detach().clone().contiguous() for k, v in keep["model"].items()}
    save_checkpoint(dst, keep)
    return keep
