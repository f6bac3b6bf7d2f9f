"""What every route of the service needs, built once by :func:`~soundseek.service.app.create_app`
and read by the routers through :func:`get_ctx` (``app.state.ctx``)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from fastapi import Request

from ..index.search import Searcher
from .limits import UploadLimits

__all__ = ["ServiceContext", "get_ctx"]


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
    """

    searcher: Searcher
    model_pool: ThreadPoolExecutor
    max_upload_bytes: int
    max_query_chars: int
    max_k: int
    upload_limits: UploadLimits

    def on_model(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on a model thread: concurrent requests queue instead of each allocating
        model activations on its own server thread (measured in docs/benchmarks.md)."""
        return self.model_pool.submit(fn, *args, **kwargs).result()


def get_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx
