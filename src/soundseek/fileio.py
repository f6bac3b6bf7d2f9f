"""Files: the audio extensions soundseek reads, and atomic writes (a crash leaves either the
old file or the complete new one)."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Callable, IO

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif")
"""Audio files that corpora, folders and uploads are read from (decoded by libsndfile), in the
order a corpus picks among files of one stem: lower case, with the dot (``Path.suffix``)."""

AUDIO_EXTENSION_NAMES: tuple[str, ...] = tuple(e[1:] for e in AUDIO_EXTENSIONS)
""":data:`AUDIO_EXTENSIONS` without the dot (``"wav"``), same order: for names that carry an
extension without a dot or none at all (corpus formats that name files by id)."""

LIBSNDFILE_EXTENSIONS: frozenset[str] = frozenset(AUDIO_EXTENSIONS) | {".opus", ".aifc", ".au", ".voc", ".caf", ".w64"}
"""Every extension libsndfile (1.2) decodes, with the dot: :data:`AUDIO_EXTENSIONS` plus rarer
formats that collected packages ship (kept as shipped when a corpus is built from them)."""


def _umask() -> int:
    """This process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def atomic_replace_via(path: str | Path, write: Callable[[Path], object]) -> None:
    """Have ``write(tmp)`` write the whole file at a temp path beside ``path`` (for writers that
    take a file name, such as ``faiss.write_index``), then fsync it and move it into place. On any
    error the temp file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # the new file keeps the old one's permissions, else gets those of a plain open()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # mode 0600
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, writer: Callable[[IO[bytes]], object]) -> None:
    """Run ``writer(file)`` on a temp file beside ``path``, fsync it and move it into place."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            writer(f)

    atomic_replace_via(path, write)


def atomic_write_data(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write_bytes(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_data(path, text.encode("utf-8"))
