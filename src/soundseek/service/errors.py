"""One JSON shape for every error the service returns, and the access log of refused requests.

Every 4xx/5xx body is ``{"status": <int>, "error": "<short code>", "detail": "<one line>"}``
(validation errors included: ``detail`` names the bad parameter; a number outside its
bounds is a 400, a value of the wrong type a 422). Client faults are logged
as one line on the ``soundseek.access`` logger at WARNING (the default level of
``soundseek serve``), with the request target escaped so it cannot forge log lines; only a
server fault (500) logs a traceback, on ``soundseek.service``.
"""
from __future__ import annotations

import logging
import sqlite3
from http import HTTPStatus
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..safe_open import printable

access_log = logging.getLogger("soundseek.access")
service_log = logging.getLogger("soundseek.service")

__all__ = ["error_response", "install_error_handlers", "install_logging", "log_refusal", "access_log",
           "service_log"]


def _code(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body; ``detail`` is one line (newlines and control characters escaped)."""
    return JSONResponse({"status": int(status), "error": _code(status), "detail": printable(str(detail))},
                        status_code=int(status), headers=headers)


def _target(scope: dict) -> str:
    path = scope.get("path", "")
    qs = scope.get("query_string", b"")
    if qs:
        path += "?" + qs.decode("latin-1")
    return printable(path)[:300]


def log_refusal(scope: dict, status: int, detail: str) -> None:
    """One escaped line per refused request: client, method, target, status, reason."""
    client = scope.get("client") or ("-", 0)
    access_log.warning("%s %s %s -> %d %s", client[0], scope.get("method", "-"), _target(scope), int(status),
                       printable(str(detail))[:300])


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = [str(x) for x in err.get("loc", ()) if x not in ("query", "body", "path", "header", "form")]
        parts.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


_BOUNDS = {"greater_than_equal": ("ge", "at least"), "greater_than": ("gt", "above"),
           "less_than_equal": ("le", "at most"), "less_than": ("lt", "below")}


def _out_of_range(exc: RequestValidationError) -> str | None:
    """``k must be at least 1, got 0`` when every error is a number outside its bounds (a
    400, as the same value is refused by a local search); None for other errors (422)."""
    parts = []
    for err in exc.errors():
        kind = _BOUNDS.get(err.get("type", ""))
        if kind is None or not err.get("loc"):
            return None
        name = str(err["loc"][-1])
        parts.append(f"{name} must be {kind[1]} {(err.get('ctx') or {}).get(kind[0])}, got {err.get('input')!r}")
    return "; ".join(parts[:5]) or None


def install_error_handlers(app: FastAPI) -> None:
    """Route HTTP errors, validation errors and unexpected exceptions to :func:`error_response`."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        log_refusal(request.scope, exc.status_code, detail)
        return error_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        bounds = _out_of_range(exc)
        status, detail = (400, bounds) if bounds else (422, _validation_detail(exc))
        log_refusal(request.scope, status, detail)
        return error_response(status, detail)

    @app.exception_handler(sqlite3.DatabaseError)
    async def damaged_index(request: Request, exc: sqlite3.DatabaseError) -> JSONResponse:
        service_log.error("index.sqlite is damaged (%s) on %s %s; repair: re-run `soundseek index` with "
                          "--rebuild", printable(str(exc)), request.method, _target(request.scope))
        return error_response(503, "the index is damaged; the operator must rebuild it")

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - guard
        service_log.error("unhandled error on %s %s", request.method, _target(request.scope), exc_info=exc)
        return error_response(500, "internal server error")


def install_logging(level: int = logging.WARNING) -> None:
    """Give the access log a stderr handler when the application has not configured logging."""
    for log in (access_log, service_log):
        if not log.handlers:
            h = logging.StreamHandler()
            h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
            log.addHandler(h)
        log.setLevel(level)
        log.propagate = True

