"""Dependencies of the routes (FastAPI ``Depends``): the open index and the service's limits
(:class:`ServiceContext`, built once by :func:`~soundseek.service.app.create_app`), and the
typed, bounded request parameters shared by the search routes: filters, paging, clip ids,
and the rule that an unknown query parameter is a 400 naming the valid ones (a misspelt
``min_duraton`` must not silently search everything)."""
from __future__ import annotations

import contextvars
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import HTTPException, Query, Request

from ..index.search import MAX_K, Searcher
from .limits import UploadGate, UploadLimits

__all__ = ["ServiceContext", "get_ctx", "Filters", "filters", "paging", "reject_unknown_params", "item_id",
           "ID_PATTERN", "MAX_OFFSET"]


@dataclass
class ServiceContext:
    """The open index and the service's limits.

    Attributes:
        searcher: the open index.
        model_pool: the few threads that decode uploads and run the model.
        max_upload_bytes: largest accepted upload (counted while receiving).
        max_query_chars: longest text query.
        max_k: most hits per page.
        upload_limits: duration and decoding-time caps of uploaded queries.
        upload_gate: bounds concurrent upload decodes (a queue, then 503 with ``Retry-After``).
    """

    searcher: Searcher
    model_pool: ThreadPoolExecutor
    max_upload_bytes: int
    max_query_chars: int
    max_k: int
    upload_limits: UploadLimits
    upload_gate: UploadGate

    def on_model(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on a model thread: concurrent requests queue instead of each allocating
        model activations on its own server thread (measured in docs/benchmarks.md)."""
        # run in the request's context: its pinned index (a rebuild swaps the index between requests)
        return self.model_pool.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


ID_PATTERN = re.compile(r"^[0-9]{1,18}$")
MAX_OFFSET = MAX_K - 1  # offset + k <= MAX_K: the deepest page a search ranks
Filters = dict[str, Any]


def filters(
    min_duration: float | None = Query(None, ge=0.0, le=1e7, description="shortest file, seconds"),
    max_duration: float | None = Query(None, ge=0.0, le=1e7, description="longest file, seconds"),
    sample_rate: int | None = Query(None, ge=1, le=10_000_000, description="sample rate, Hz (exact)"),
    channels: int | None = Query(None, ge=1, le=256, description="channel count (exact)"),
    format: str | None = Query(None, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9]+$",
                               description="file format / extension, e.g. wav, flac, ogg"),
    folder: str | None = Query(None, min_length=1, max_length=1000,
                               description="folder prefix, relative to the indexed folder"),
    tag: str | None = Query(None, min_length=1, max_length=200, description="a tag the file carries"),
) -> Filters:
    """The ``where`` filters of a search (only those given)."""
    where = {"min_duration": min_duration, "max_duration": max_duration, "sample_rate": sample_rate,
             "channels": channels, "format": format.lower() if format else None, "folder": folder, "tag": tag}
    if min_duration is not None and max_duration is not None and min_duration > max_duration:
        raise HTTPException(400, f"min_duration ({min_duration}) is above max_duration ({max_duration})")
    return {k: v for k, v in where.items() if v is not None}


def paging(k: int = Query(10, ge=1, le=MAX_K, description=f"hits per page, 1..{MAX_K}"),
           offset: int = Query(0, ge=0, le=MAX_OFFSET, description="hits to skip (the next page: offset + k)")
           ) -> tuple[int, int]:
    return k, offset


_KNOWN: dict[int, frozenset[str]] = {}


def _query_names(route: Any) -> frozenset[str]:
    got = _KNOWN.get(id(route))
    if got is None:
        names: set[str] = set()
        todo = [route.dependant]
        while todo:
            d = todo.pop()
            names.update(p.alias for p in d.query_params)
            todo.extend(d.dependencies)
        got = _KNOWN[id(route)] = frozenset(names)
    return got


def reject_unknown_params(request: Request) -> None:
    """Router dependency: a query parameter the route does not declare is a 400 listing the
    ones it does."""
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    known = _query_names(route)
    unknown = sorted({k for k in request.query_params.keys() if k not in known})
    if unknown:
        valid = ", ".join(sorted(known)) or "none"
        raise HTTPException(400, f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                                 f"{', '.join(repr(u[:40]) for u in unknown[:5])}; valid: {valid}")


def item_id(clip_id: str) -> int:
    """A clip id from the URL path (opaque decimal integer); anything else is a 404."""
    if not ID_PATTERN.match(clip_id):
        raise HTTPException(404, "unknown clip id")
    return int(clip_id)
