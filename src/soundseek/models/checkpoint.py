"""Atomic, safe checkpoint files: plain tensors and Python values only, loaded with
``weights_only=True`` (a file that would need to run code to load is refused).

Layout (a dict)::

    format: "soundseek-checkpoint", version: 2
    config: the recipe (``soundseek.models.config.Config`` as a dict)
    audio_dim, text_dim: widths of the towers' outputs
    model: state dict of the model without its frozen towers (scorer, loss, trained towers)
    towers: {"audio_encoder" | "text_encoder": {"trained": bool, "source": tower.config()}}
    (training checkpoints add optimizer, scheduler, epoch, best, history, rng)

A frozen tower is stored as a reference to its source (the recipe's ``encoders`` section and
the tower's ``config()``, which names its weights), a trained one by its weights. Version 1
files (heads only, no ``towers``) load as models whose towers are both frozen.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from soundseek.fileio import atomic_write_bytes

FORMAT = "soundseek-checkpoint"
VERSION = 2
INFERENCE_KEYS = ("config", "config_hash", "audio_dim", "text_dim", "model", "towers", "epoch", "best", "history")


class CheckpointFileError(ValueError):
    """A file is not a soundseek checkpoint (or would need to run code to be loaded)."""


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    atomic_write_bytes(Path(path), lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a soundseek checkpoint; refuses anything that is not plain tensors/values.

    Raises:
        FileNotFoundError: no such file.
        CheckpointFileError: not a torch file, damaged, holding Python objects beyond tensors
            and plain values, or not written by soundseek.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - torch's message advises unsafe loading: never shown
        if _imports_code(path):
            raise CheckpointFileError(
                f"{path} holds Python objects other than tensors and plain values; loading it could run "
                "code, so soundseek refuses it. Use a checkpoint written by `soundseek train`."
            ) from None
        raise CheckpointFileError(f"{path} is not a soundseek checkpoint (not a readable torch file)") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointFileError(f"{path} is not a soundseek checkpoint (no format tag {FORMAT!r})")
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointFileError(f"{path} was written by a newer soundseek (version {ckpt['version']} > {VERSION})")
    return ckpt


def _imports_code(path: Path) -> bool:
    """True when the file's pickle (plain, or ``data.pkl`` of a torch zip) names callables
    (GLOBAL / STACK_GLOBAL / INST opcodes); read with ``pickletools``, never unpickled."""
    import pickletools
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = path.read_bytes()[: 64 * 2**20]
        return any(op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "REDUCE") for op, _, _ in pickletools.genops(data))
    except Exception:  # noqa: BLE001 - not a pickle at all
        return False


def export_inference(src: str | Path, dst: str | Path) -> dict[str, Any]:
    """Copy a training checkpoint without optimiser/scheduler state (for shipping a model)."""
    ckpt = load_checkpoint(src)
    keep = {k: ckpt[k] for k in INFERENCE_KEYS if k in ckpt}
    keep["model"] = {k: v.detach().clone().contiguous() for k, v in keep["model"].items()}
    save_checkpoint(dst, keep)
    return keep
