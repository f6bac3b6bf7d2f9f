"""Serve an indexed audio file safely: open once, verify the descriptor, stream from it.

The recorded resolved path is opened with ``O_NOFOLLOW`` (a symlink planted in its place is
refused), the descriptor must be a regular file, its kernel path (``/proc/self/fd``) must be
the recorded resolved path (an intermediate directory swapped for a link is caught) and lie
inside the indexed folder, and its device/inode must be the ones recorded at index time. The
bytes are then read with ``pread`` from that descriptor only, so a later swap of the path
cannot change what is sent. Single byte ranges (``Range: bytes=a-b``, ``a-``, ``-n``) give
206; an unsatisfiable range gives 416; HEAD sends the headers only.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
from starlette.responses import Response

from ..safe_open import UnsafeFileError, open_regular
from .errors import error_response, log_refusal

__all__ = ["open_indexed", "FdResponse", "parse_range", "RangeNotSatisfiable", "audio_response"]

CHUNK = 256 << 10
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)


class RangeNotSatisfiable(ValueError):
    pass


def open_indexed(row: dict, root: str | Path | None) -> tuple[int, os.stat_result]:
    """(fd, stat) of the file recorded in ``row`` (an items row with path/realpath/dev/ino/key).

    Raises:
        UnsafeFileError: vanished (``errno.ENOENT``), swapped for a link / another file,
            outside the folder, or not a regular file.
    """
    real = row.get("realpath") or row.get("path")
    if not real:
        raise UnsafeFileError("-", "no file for this item")
    expect = (row["dev"], row["ino"]) if row.get("dev") is not None and row.get("ino") is not None else None
    inside = root if root and not str(row.get("key", "")).startswith("/") else None
    return open_regular(real, nofollow=True, root=inside, expect=expect, real_path=real)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``Range`` header -> (start, end inclusive) or None (serve the whole file).

    Unparseable or multi-range headers are ignored (RFC 9110 allows it); a syntactically valid
    range that misses the file raises :class:`RangeNotSatisfiable`."""
    if not header:
        return None
    m = _RANGE.match(header)
    if m is None:
        return None
    a, b = m.group(1), m.group(2)
    if a == "" and b == "":
        return None
    if a == "":  # suffix: the last n bytes
        n = int(b)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - n), size - 1
    start = int(a)
    end = size - 1 if b == "" else min(int(b), size - 1)
    if start >= size or (b != "" and int(b) < start):
        raise RangeNotSatisfiable(header)
    return start, end


class FdResponse(Response):
    """ASGI response streaming ``length`` bytes of ``fd`` from ``start`` (closes ``fd``).

    If the file shrinks while it is sent, the missing tail is sent as zeros so the declared
    Content-Length stays true (never bytes of another file); a client that goes away ends
    the stream quietly.
    """

    def __init__(self, fd: int, start: int, length: int, status: int, headers: dict[str, str],
                 head: bool = False) -> None:
        self.fd, self.start, self.length, self.status_code, self.head = fd, start, length, status, head
        self.background = None
        self.raw_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers.append((b"content-length", str(length).encode()))

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if self.head or self.length == 0:
                await send({"type": "http.response.body", "body": b""})
                return
            pos, left = self.start, self.length
            while left > 0:
                n = min(CHUNK, left)
                chunk = await anyio.to_thread.run_sync(os.pread, self.fd, n, pos)
                if len(chunk) < n:
                    chunk = chunk + b"\0" * (n - len(chunk))
                pos, left = pos + n, left - n
                await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
        except OSError:  # client disconnected (uvicorn's ClientDisconnected is an OSError)
            return
        finally:
            os.close(self.fd)


def audio_response(row: dict, root: str | Path | None, range_header: str | None, media_type: str,
                   scope: dict, head: bool = False) -> Any:
    """The response for ``GET/HEAD /api/clips/{id}/audio`` of an indexed ``row``."""
    try:
        fd, st = open_indexed(row, root)
    except UnsafeFileError as e:
        log_refusal(scope, 404, f"audio not served: {e.reason}")
        return error_response(404, "audio file no longer available" if e.errno == 2 else "no audio for this id")
    size = st.st_size
    name = Path(row.get("path") or "audio").name
    headers = {"content-type": media_type, "accept-ranges": "bytes", "cache-control": "private, max-age=3600",
               "content-disposition": f"inline; filename*=UTF-8''{quote(os.fsencode(name), safe='')}",
               "etag": f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'}
    try:
        rng = parse_range(range_header, size)
    except RangeNotSatisfiable:
        os.close(fd)
        log_refusal(scope, 416, f"range not satisfiable ({range_header})")
        return error_response(416, f"range not satisfiable (file has {size} bytes)",
                              headers={"Content-Range": f"bytes */{size}"})
    if rng is None:
        return FdResponse(fd, 0, size, 200, headers, head)
    start, end = rng
    headers["content-range"] = f"bytes {start}-{end}/{size}"
    return FdResponse(fd, start, end - start + 1, 206, headers, head)
