"""Checkpoint files live in :mod:`soundseek.models.checkpoint`; this module keeps the trainer's
historical import path."""
from soundseek.fileio import atomic_write_bytes  # noqa: F401
from soundseek.models.checkpoint import FORMAT, VERSION, export_inference, load_checkpoint, save_checkpoint  # noqa: F401
