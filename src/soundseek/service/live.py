"""The service follows rebuilds of its index (:class:`~soundseek.index.live.LiveSearcher`):
each request is pinned to one searcher for its whole life, so no answer mixes two indexes;
a request caught by a rebuild mid-way gets 503 with ``Retry-After`` instead of ids of the
old index resolved against the new one."""
from __future__ import annotations

from typing import Any

import anyio
from fastapi import FastAPI, Request

from ..index.live import LiveSearcher
from ..index.search import Searcher
from ..index.store import IndexReplacedError
from .errors import error_response, log_refusal

__all__ = ["follow_rebuilds"]


class _Pin:
    """ASGI middleware: pin the request to the current searcher (looked up off the event loop:
    opening a rebuilt index takes a while)."""

    def __init__(self, app: Any, live: LiveSearcher) -> None:
        self.app, self.live = app, live

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.live.due():  # a look at the directory (and maybe a reopen): off the event loop
            searcher = await anyio.to_thread.run_sync(self.live.current)
        else:
            searcher = self.live.current()
        with self.live.pinned(searcher):
            await self.app(scope, receive, send)


def follow_rebuilds(app: FastAPI, index: Searcher | LiveSearcher) -> LiveSearcher:
    """Install the pinning middleware and the 503 answer; returns the searcher to use."""
    live = index if isinstance(index, LiveSearcher) else LiveSearcher(index)
    app.add_middleware(_Pin, live=live)

    @app.exception_handler(IndexReplacedError)
    async def replaced(request: Request, exc: IndexReplacedError):
        log_refusal(request.scope, 503, "index rebuilt during the request")
        return error_response(503, "the index was just rebuilt; retry", headers={"Retry-After": "1"})

    return live
