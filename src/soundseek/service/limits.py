"""Request limits of the HTTP service: body size (counted while receiving, chunked or not),
allowed ``Host`` headers (DNS rebinding), meaningful queries, and bounded decoding of uploads.
"""
from __future__ import annotations

import ipaddress
import math
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from starlette.exceptions import HTTPException

from .errors import error_response, log_refusal

__all__ = ["BodyLimit", "HostCheck", "UploadLimits", "clean_query", "decode_upload", "default_allowed_hosts",
           "UploadRefused", "UploadGate"]


class _TooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so body parsing passes it on as a 413."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"Connection": "close"})


class BodyLimit:
    """ASGI middleware: requests to ``paths`` may send at most ``limit + slack`` body bytes
    (``slack``: room for multipart framing around a file of ``limit`` bytes).

    A declared ``Content-Length`` above the limit is refused before reading; otherwise (and
    for chunked bodies) bytes are counted as they arrive and the request is refused with 413
    as soon as the count passes the limit, so at most the limit plus one received chunk is
    ever read (``bytes_read`` in the scope's state records how much was).
    """

    def __init__(self, app: Any, limit: int, paths: Iterable[str], slack: int = 0) -> None:
        self.app, self.limit, self.paths, self.slack = app, int(limit) + int(slack), frozenset(paths), int(slack)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") not in self.paths:
            return await self.app(scope, receive, send)
        detail = f"upload too large (limit {self.limit - self.slack} bytes)"
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    return await self._refuse(scope, receive, send, 400, "bad Content-Length")
                if declared > self.limit:
                    return await self._refuse(scope, receive, send, 413, detail)
        state = scope.setdefault("state", {})
        state["bytes_read"] = 0
        started = False

        async def counted_receive() -> dict:
            msg = await receive()
            if msg["type"] == "http.request":
                state["bytes_read"] += len(msg.get("body", b""))
                if state["bytes_read"] > self.limit:
                    raise _TooLarge(f"{detail}; refused after reading {state['bytes_read']} bytes")
            return msg

        async def tracked_send(msg: dict) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _TooLarge as e:  # raised where no exception handler converted it
            if not started:
                await self._refuse(scope, receive, send, 413, e.detail)

    @staticmethod
    async def _refuse(scope: dict, receive: Any, send: Any, status: int, detail: str) -> None:
        log_refusal(scope, status, detail)
        resp = error_response(status, detail, headers={"Connection": "close"})
        await resp(scope, receive, send)


def _host_of(header: str) -> str:
    """Host header -> lower-case host without port (``[::1]:8000`` -> ``::1``)."""
    h = header.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h.rstrip(".")


_HOST_SYNTAX = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$")  # RFC 9110 Host: host[:port]


def default_allowed_hosts(bind: str) -> list[str]:
    """The bind address plus the loopback names: what ``soundseek serve`` accepts by default."""
    hosts = ["localhost", "127.0.0.1", "::1"]
    b = _host_of(bind)
    if b and b not in hosts and b not in ("0.0.0.0", "::"):
        hosts.append(b)
    return hosts


class HostCheck:
    """ASGI middleware refusing requests whose ``Host`` is not in ``allowed`` (400, logged).

    Entries are host names or IP addresses without port; ``*.example.org`` allows the
    sub-domains; ``*`` allows everything (checking off). This defeats DNS rebinding: a page on
    ``evil.example`` that re-points its name to 127.0.0.1 still sends ``Host: evil.example``.
    """

    def __init__(self, app: Any, allowed: Sequence[str]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.exact = {_host_of(a) for a in allowed if not a.startswith("*.")}
        self.suffixes = tuple(a[1:].lower() for a in allowed if a.startswith("*."))

    def ok(self, host: str) -> bool:
        if not _HOST_SYNTAX.match(host.strip()):  # userinfo, paths, spaces: never a valid Host
            return False
        h = _host_of(host)
        if self.any or h in self.exact or (self.suffixes and h.endswith(self.suffixes)):
            return True
        try:  # 127.000.000.001 and friends are still 127.0.0.1
            return str(ipaddress.ip_address(h)) in self.exact
        except ValueError:
            return False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not self.any:
            host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
            if not self.ok(host):
                detail = "invalid Host header"
                log_refusal(scope, 400, f"{detail} ({host[:100]})")
                return await error_response(400, detail)(scope, receive, send)
        await self.app(scope, receive, send)


def clean_query(q: str, raw: bytes | None = None) -> str:
    """A text query with control characters removed; ValueError when nothing meaningful is left
    (empty, NUL-only, zero-width-only, only invalid UTF-8)."""
    if raw is not None:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("query is not valid UTF-8") from None
    if "\ufffd" in q and raw is None:
        raise ValueError("query is not valid UTF-8")
    kept = "".join(ch for ch in q if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn"))
    kept = " ".join(kept.split())
    if not kept:
        if q.strip():
            raise ValueError("query has no visible characters (only control, NUL or zero-width characters)")
        raise ValueError("empty query: type a few words describing the sound")
    return kept


@dataclass(frozen=True)
class UploadLimits:
    """Bounds on decoding one uploaded query.

    Attributes:
        max_seconds: longest audio accepted (declared or found while decoding).
        wall_seconds: decoding and resampling stop with an error after this long.
        max_channels, max_sample_rate: refused from the header, before any sample is decoded.
        max_frames: input frames decoded at most (64 MiB of mono float32 at the default).
        concurrent, waiting: uploads decoded at once and queued behind them; more get 503.
    """

    max_seconds: float = 600.0
    wall_seconds: float = 10.0
    max_channels: int = 16
    max_sample_rate: int = 192_000
    max_frames: int = 1 << 24  # input frames decoded at most, whatever the duration allows
    concurrent: int = 2  # uploads decoded at once; further ones wait ...
    waiting: int = 4  # ... up to this many, then 503 with Retry-After


class UploadRefused(ValueError):
    """An upload is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


def decode_upload(path: Path, sample_rate: int, keep_seconds: float | None, limits: UploadLimits,
                  name: str = "upload") -> np.ndarray:
    """Decode an uploaded query to mono ``sample_rate``, bounded in samples and wall time.

    ``keep_seconds`` (the index's ``max_seconds``) crops: only that much is decoded whatever the
    file's length. Without it, audio longer than ``limits.max_seconds`` is refused (413).
    Implausible headers and unreadable data are 415, a decode past the wall time is 422.
    """
    from ..audio.io import AudioDecodeError, audio_info, load_audio

    deadline = time.monotonic() + limits.wall_seconds
    try:
        info = audio_info(path)
        if info.channels > limits.max_channels:
            raise UploadRefused(415, f"{info.channels} channels (accepted: up to {limits.max_channels})")
        if info.sample_rate > limits.max_sample_rate:
            raise UploadRefused(415, f"sample rate {info.sample_rate} Hz (accepted: up to {limits.max_sample_rate} Hz)")
        keep = limits.max_seconds if keep_seconds is None else min(float(keep_seconds), limits.max_seconds)
        max_frames = min(max(1, int(math.ceil(keep * info.sample_rate))) + 64, int(limits.max_frames))
        longest = min(limits.max_seconds, max_frames / info.sample_rate)
        if keep_seconds is None and info.duration > longest:
            raise UploadRefused(413, f"audio too long ({info.duration:.0f} s; limit {longest:.0f} s at "
                                     f"{info.sample_rate} Hz)")
        if keep_seconds is None:  # whole file, refused if it turns out longer than its header said
            wave = load_audio(path, int(sample_rate), max_frames=max_frames, too_long="error", deadline=deadline,
                              max_channels=limits.max_channels)
        else:
            wave = load_audio(path, int(sample_rate), max_seconds=keep, max_frames=max_frames, deadline=deadline,
                              max_channels=limits.max_channels)
    except AudioDecodeError as e:
        reason = str(e.reason).replace(str(path), name)
        if "decoding limit" in reason:
            raise UploadRefused(413, f"audio too long (limit {limits.max_seconds:g} s, at most "
                                     f"{limits.max_frames} frames)") from None
        if "took too long" in reason:
            raise UploadRefused(422, f"decoding the upload took too long (limit {limits.wall_seconds:g} s)") from None
        raise UploadRefused(415, f"not a readable audio file ({reason})") from None
    if wave.size == 0:
        raise UploadRefused(415, "not a readable audio file (no audio samples)")
    return wave


class UploadGate:
    """At most ``concurrent`` uploads decode at once and ``waiting`` more queue behind them;
    beyond that an upload is refused at once (503, ``Retry-After``), so decoding never piles up
    and never takes the threads that answer text searches."""

    def __init__(self, concurrent: int, waiting: int, retry_after: int = 2) -> None:
        import threading

        if concurrent < 1 or waiting < 0:
            raise ValueError(f"concurrent must be >= 1 and waiting >= 0, got {concurrent}, {waiting}")
        self._slots = threading.BoundedSemaphore(int(concurrent))
        self._lock = threading.Lock()
        self._admitted, self._max = 0, int(concurrent) + int(waiting)
        self.retry_after = int(retry_after)

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._admitted >= self._max:
                raise UploadRefused(503, "too many uploads being decoded; retry shortly",
                                    headers={"Retry-After": str(self.retry_after)})
            self._admitted += 1
        try:
            with self._slots:
                return fn(*args, **kwargs)
        finally:
            with self._lock:
                self._admitted -= 1
