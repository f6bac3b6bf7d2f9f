"""Open files a stranger may control without blocking, following planted links or racing a swap.

``open_regular`` opens once and checks *the opened descriptor* (``fstat``), so a FIFO,
device or socket named ``x.wav`` is refused without ever blocking on it (``O_NONBLOCK`` on
open), and a file swapped for something else between a check and the open is caught:

* ``nofollow=True`` refuses a symlink in the last path component (``O_NOFOLLOW``);
* ``root`` refuses a file whose resolved path (read back from ``/proc/self/fd`` where
  available) is not inside ``root``;
* ``expect=(st_dev, st_ino)`` refuses a file that is not the one recorded earlier;
* ``real_path`` refuses a file reached through a directory swapped for a link since.

Every refusal raises :class:`UnsafeFileError` (an ``OSError`` with a short ``reason``).
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

__all__ = ["UnsafeFileError", "open_regular", "file_kind", "printable"]


class UnsafeFileError(OSError):
    """A path is missing, not a regular file, a link, outside its root, or was swapped."""

    def __init__(self, path: str | Path, reason: str, code: int = errno.EINVAL) -> None:
        super().__init__(code, reason, str(path))
        self.path = Path(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{printable(str(self.path))}: {self.reason}"

    def __reduce__(self):
        return (type(self), (str(self.path), self.reason, self.errno))


def file_kind(mode: int) -> str:
    """'regular file' / 'fifo' / 'socket' / 'character device' / ... for ``st_mode``."""
    for test, name in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISLNK, "symlink")):
        if test(mode):
            return name
    return "special file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def open_regular(path: str | Path, *, nofollow: bool = False, root: str | Path | None = None,
                 expect: tuple[int, int] | None = None,
                 real_path: str | Path | None = None) -> tuple[int, os.stat_result]:
    """Open ``path`` read-only and return ``(fd, fstat result)`` of a verified regular file.

    The caller owns ``fd`` (close it, or wrap it with ``os.fdopen``). The descriptor is in
    blocking mode again when returned.

    Raises:
        UnsafeFileError: missing, unreadable, not a regular file, a symlink (``nofollow``),
            outside ``root``, not the (device, inode) in ``expect``, or whose resolved path
            (the kernel's, read from the descriptor) is not ``real_path``.
    """
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if nofollow:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise UnsafeFileError(path, "file not found", errno.ENOENT) from None
    except OSError as e:
        if e.errno == errno.ELOOP and nofollow:
            raise UnsafeFileError(path, "is a symlink (not followed)", errno.ELOOP) from None
        if e.errno == errno.ENXIO:  # O_NONBLOCK open of a FIFO/socket without a peer
            raise UnsafeFileError(path, "not a regular file", errno.ENXIO) from None
        raise UnsafeFileError(path, f"cannot open ({e.strerror or e})", e.errno or errno.EIO) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(path, f"not a regular file ({file_kind(st.st_mode)})")
        if expect is not None and (st.st_dev, st.st_ino) != tuple(expect):
            raise UnsafeFileError(path, "file was replaced since it was indexed", errno.ESTALE)
        if root is not None or real_path is not None:
            real = _fd_path(fd, path)
            if real_path is not None and real != str(real_path):
                raise UnsafeFileError(path, "path changed since it was indexed", errno.ESTALE)
            if root is not None and not _inside(real, os.path.realpath(root)):
                raise UnsafeFileError(path, "resolves outside its folder", errno.EACCES)
        os.set_blocking(fd, True)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def _fd_path(fd: int, path: Path) -> str:
    """The resolved path of an open descriptor: the kernel's (Linux ``/proc``), else realpath.

    Raises UnsafeFileError when the file was unlinked (replaced) after it was opened."""
    try:
        p = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        p = ""
    if p.endswith(" (deleted)"):
        raise UnsafeFileError(path, "file was removed or replaced while opening it", errno.ESTALE)
    if p.startswith(os.sep):
        return p
    try:
        return os.path.realpath(path, strict=True)
    except OSError as e:
        raise UnsafeFileError(path, f"cannot resolve ({e.strerror or e})", errno.ESTALE) from None


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def printable(s: str) -> str:
    """``s`` with control, format (bidi, zero-width) and unpaired surrogate characters escaped,
    so a file name cannot forge a log line or hide text on a terminal."""
    import unicodedata

    out = []
    for ch in str(s):
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            out.append(f"\\x{ord(ch):02x}" if ord(ch) < 256 else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)
