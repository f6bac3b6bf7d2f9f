"""Files: the audio extensions soundseek reads, and atomic writes (a crash leaves either the
old file or the complete new one)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif")
"""Audio files that corpora, folders and uploads are read from (decoded by libsndfile), in the
order a corpus picks among files of one stem."""


def atomic_write_bytes(path: str | Path, writer: Callable[[IO[bytes]], object]) -> None:
    """Run ``writer(file)`` on a temp file beside ``path``, fsync it and move it into place."""
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


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))
