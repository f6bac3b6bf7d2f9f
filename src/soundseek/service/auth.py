"""Bearer-token authentication for ``soundseek serve`` (docs/security.md).

Tokens live hashed in a JSON file (``soundseek token add/revoke``; SHA-256 of a 256-bit random
token, file mode 0600, written atomically); a token is shown once, when it is made. Each has
scopes: ``read`` (search, metadata, audio) and ``upload`` (query by example, which also reads).

With tokens, every API route needs ``Authorization: Bearer <token>`` (401 without or with a
wrong one, 403 without the scope), except a *bare* ``GET /api/health`` that says only
``{"status": "ok"}``; the page and its static files (no data) load without one, and the page
asks for the token when the API answers 401. Uploads are rate-limited per token. Tokens are
never logged: refusals log the token's name at most.

``serve`` on a loopback address needs no tokens; on any other address it refuses to start
without ``--tokens FILE`` unless ``--no-auth`` says so explicitly (:func:`require_auth`).
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.responses import JSONResponse

from .errors import error_response, log_refusal

__all__ = ["SCOPES", "TokenFile", "TokenAuth", "require_auth", "is_loopback"]

SCOPES = ("read", "upload")
UPLOAD_PATHS = frozenset({"/api/search/audio"})
PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/", "/favicon.ico"})


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class TokenFile:
    """The token file: ``{"tokens": [{"name", "sha256", "scopes", "created"}]}``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def entries(self) -> list[dict]:
        if not self.path.is_file():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            entries = data["tokens"]
            assert isinstance(entries, list) and all(
                isinstance(e, dict) and {"name", "sha256", "scopes"} <= set(e) for e in entries)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ValueError(f"{self.path} is not a soundseek token file (make one with `soundseek token add`)") \
                from None
        return entries

    def _write(self, entries: list[dict]) -> None:
        from ..fileio import atomic_write_text

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps({"tokens": entries}, indent=2))
        os.chmod(self.path, 0o600)

    def add(self, name: str, scopes: list[str]) -> str:
        """Make a token named ``name`` with ``scopes``; returns it (the only time it is seen)."""
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise ValueError(f"Invalid scope {bad[0] if bad else ''!r}. Valid: {', '.join(SCOPES)}")
        if not name or not name.isprintable() or len(name) > 100:
            raise ValueError("a token name must be 1..100 printable characters")
        entries = self.entries()
        if any(e["name"] == name for e in entries):
            raise ValueError(f"a token named {name!r} exists in {self.path}; revoke it first")
        token = "ss_" + secrets.token_urlsafe(32)
        entries.append({"name": name, "sha256": _digest(token), "scopes": sorted(set(scopes)),
                        "created": time.time()})
        self._write(entries)
        return token

    def revoke(self, name: str) -> None:
        entries = self.entries()
        kept = [e for e in entries if e["name"] != name]
        if len(kept) == len(entries):
            raise KeyError(f"no token named {name!r} in {self.path}. Names: "
                           f"{', '.join(e['name'] for e in entries) or '(none)'}")
        self._write(kept)


@dataclass
class _Caller:
    name: str
    scopes: frozenset


class TokenAuth:
    """ASGI middleware checking bearer tokens of :class:`TokenFile` ``path`` (re-read when the
    file changes, so ``token revoke`` takes effect without a restart).

    Args:
        uploads_per_minute: uploads one token may make per minute (429 + Retry-After beyond).
    """

    def __init__(self, app: Any, path: str | Path, uploads_per_minute: int = 30) -> None:
        self.app, self.file = app, TokenFile(path)
        self.rate = int(uploads_per_minute)
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._by_hash: dict[str, _Caller] = {}
        self._uploads: dict[str, deque] = {}
        self._load()

    def _load(self) -> None:
        try:
            st = self.file.path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp and self._stamp is not None:
            return
        entries = self.file.entries()
        with self._lock:
            self._by_hash = {e["sha256"]: _Caller(e["name"], frozenset(e["scopes"])) for e in entries}
            self._stamp = stamp

    def _caller(self, scope: dict) -> _Caller | None:
        """The caller of a bearer token, or of the page's ``soundseek_token`` cookie (set by
        static/auth.js for <audio> elements, which cannot send headers)."""
        headers = dict(scope.get("headers", ()))
        kind, _, token = headers.get(b"authorization", b"").decode("latin-1").strip().partition(" ")
        if kind.lower() != "bearer":
            token = ""
        if not token.strip():
            from http.cookies import SimpleCookie
            from urllib.parse import unquote

            try:
                jar = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie is no token
                return None
            token = unquote(jar["soundseek_token"].value) if "soundseek_token" in jar else ""
        if not token.strip():
            return None
        try:
            self._load()
        except ValueError:
            pass  # keep the tokens read last
        return self._by_hash.get(_digest(token.strip()))

    def _rate_ok(self, name: str) -> float:
        """0 when an upload is allowed now, else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            q = self._uploads.setdefault(name, deque())
            while q and now - q[0] > 60.0:
                q.popleft()
            if len(q) >= self.rate:
                return 60.0 - (now - q[0])
            q.append(now)
            return 0.0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            return await self.app(scope, receive, send)
        caller = self._caller(scope)
        if caller is None:
            if path == "/api/health" and scope.get("method") in ("GET", "HEAD"):
                return await JSONResponse({"status": "ok"})(scope, receive, send)  # bare: says nothing more
            log_refusal(scope, 401, "missing or invalid token")
            return await error_response(401, "a valid access token is needed (Authorization: Bearer TOKEN)",
                                        headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
        if path in UPLOAD_PATHS:
            if "upload" not in caller.scopes:
                log_refusal(scope, 403, f"token {caller.name!r} has no upload scope")
                return await error_response(403, "this token may not upload")(scope, receive, send)
            wait = self._rate_ok(caller.name)
            if wait:
                log_refusal(scope, 429, f"upload rate of token {caller.name!r}")
                return await error_response(429, f"too many uploads (limit {self.rate} a minute)",
                                            headers={"Retry-After": str(int(wait) + 1)})(scope, receive, send)
        scope.setdefault("state", {})["token_name"] = caller.name
        await self.app(scope, receive, send)


def is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def require_auth(host: str, tokens: str | Path | None, no_auth: bool) -> str | None:
    """The token file ``serve`` uses on ``host``; ValueError (one line) when it would serve a
    non-loopback address without tokens and ``no_auth`` was not given."""
    if tokens is not None:
        path = Path(tokens)
        if not TokenFile(path).entries():
            raise ValueError(f"{path} holds no tokens; make one with `soundseek token add NAME --tokens {path}`")
        return str(path)
    if is_loopback(host) or no_auth:
        return None
    raise ValueError(f"serving on {host} (reachable from the network) needs access tokens: "
                     "`soundseek token add NAME --tokens FILE`, then `soundseek serve ... --tokens FILE` "
                     "(or --no-auth to serve without them, knowingly)")
