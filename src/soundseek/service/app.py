"""HTTP service over an index: JSON API + a plain HTML/JS search page (METHODS.md §8).

    GET  /                      the search page (static/index.html; ``/?q=dog+barking`` searches on load)
    GET  /api/health            index size, kind, embedder fingerprint
    GET  /api/search?q=&k=&offset=&mode=&rerank=&<filters>   text -> clips (semantic | text | hybrid)
    POST /api/search/audio?offset=&<filters>   multipart ``file`` (+ ``k``): query by example
    GET  /api/clips/{id}/similar?k=&offset=&<filters>   sounds like an indexed clip (itself excluded)
    GET  /api/clips/{id}        metadata of one item
    GET  /api/clips/{id}/audio  the indexed file, with HTTP Range (206) so players can seek
    GET/PUT/DELETE /api/collections[/{name}[/items/{id}]]   named collections (routes/collections.py)
    GET  /openapi.json, /docs   the schema; /docs is Swagger UI from bundled files (no CDN)

Filters (``service/deps.py``): min_duration, max_duration, sample_rate, channels, format,
folder, tag. Parameters are typed and bounded; an unknown query parameter is a 400 naming
the valid ones. The routes live in ``service/routes/`` (search, clips, collections, page).

Security model (docs/security.md): ids are opaque integers looked up in SQLite; no path is
ever built from a request. A file is opened once (no-follow, regular file, inside the
folder, same device/inode as at index time) and streamed from that descriptor
(``service/files.py``). Upload bodies are counted while they arrive, chunked or not, and
refused at ``max_upload_bytes``; an upload is decoded from a temporary file (deleted
afterwards) with caps on its duration and decoding time (``service/limits.py``). Requests
with a ``Host`` outside ``allowed_hosts`` are refused (DNS rebinding); CORS is off unless
``cors_origins`` is given. Every error is one JSON shape and refused requests are logged
(``service/errors.py``).
"""
from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

from ..index.search import MAX_K, Searcher
from .deps import ServiceContext
from .docs import install_docs
from .errors import install_error_handlers, install_logging
from .limits import BodyLimit, HostCheck, UploadGate, UploadLimits, default_allowed_hosts
from .live import follow_rebuilds
from .routes import clips, collections, page, search
from .routes.page import STATIC

UPLOAD_FRAMING = 16 << 10  # multipart headers/boundaries allowed around an upload of the maximum size
ROUTERS = (search.router, clips.router, collections.router, page.router)


def create_app(index: str | Path | Searcher, embedder: Any = None, max_upload_bytes: int = 20 << 20,
               max_query_chars: int = 1000, max_k: int = MAX_K, allowed_hosts: Sequence[str] | None = None,
               cors_origins: Sequence[str] | None = None, upload_limits: UploadLimits | None = None,
               model_workers: int | None = None, tokens: str | Path | None = None,
               uploads_per_minute: int = 30) -> FastAPI:
    """Build the FastAPI app. The embedder/model is loaded once (by the caller) and shared.

    Args:
        index: index directory, or an open :class:`Searcher` (:meth:`Searcher.open`).
        embedder: the model for a directory ``index``; None: text-mode searches only.
        max_upload_bytes: uploads above this get 413 (counted while receiving).
        max_query_chars: longer text queries get 400.
        max_k: most hits per page (at most ``MAX_K``).
        allowed_hosts: accepted ``Host`` header values (``*.example.org`` for sub-domains);
            None: no check (embedding in another app). ``serve`` defaults to the bind address
            and the loopback names.
        cors_origins: origins allowed to call the API from other pages (None: CORS off).
        upload_limits: duration and decoding-time caps of uploaded queries.
        tokens: a token file (``soundseek token add``): every API route then needs a bearer
            token (:mod:`.auth`); None: no authentication (loopback use).
        uploads_per_minute: uploads one token may make per minute (with ``tokens``).
        model_workers: threads that decode uploads and run the model (default: the CPU
            count); more requests wait their turn, so 50 clients do not mean 50 decoded uploads
            and model activations in memory.
    """
    searcher = index if isinstance(index, Searcher) else Searcher.open(index, embedder=embedder,
                                                                        text_only=embedder is None)
    # Model work (decoding an upload, embedding, searching) runs on a few dedicated threads:
    # concurrent requests queue, and memory is allocated (and reused) by those threads only
    # instead of by every worker thread of the server (measured in docs/benchmarks.md).
    model_pool = ThreadPoolExecutor(max_workers=max(1, int(model_workers or os.cpu_count() or 1)),
                                    thread_name_prefix="soundseek-model")
    from ..audio import io as _decoder  # noqa: F401  (imported now, not during the first upload)
    app = FastAPI(title="soundseek", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Language-based audio retrieval: search sounds by text or by example.")
    install_docs(app)  # bundled Swagger UI: /docs works offline
    app.state.model_pool = model_pool
    install_error_handlers(app)
    searcher = app.state.searcher = follow_rebuilds(app, searcher)  # each request pinned to one index
    limits = upload_limits or UploadLimits()
    app.state.ctx = ServiceContext(searcher=searcher, model_pool=model_pool, max_upload_bytes=int(max_upload_bytes),
                                   max_query_chars=int(max_query_chars), max_k=min(int(max_k), MAX_K),
                                   upload_limits=limits, upload_gate=UploadGate(limits.concurrent, limits.waiting))
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE"],
                           allow_headers=["Range", "Content-Type"], expose_headers=["Content-Range", "Accept-Ranges"])
    app.add_middleware(BodyLimit, limit=max_upload_bytes, slack=UPLOAD_FRAMING, paths=["/api/search/audio"])
    if tokens is not None:
        from .auth import TokenAuth

        app.add_middleware(TokenAuth, path=tokens, uploads_per_minute=uploads_per_minute)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=list(allowed_hosts))

    @app.middleware("http")
    async def guard(request: Request, call_next):
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        if not request.url.path.startswith("/docs"):
            response.headers.setdefault("Content-Security-Policy",
                                        "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; "
                                        "style-src 'self'; script-src 'self'; connect-src 'self'")
        return response

    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(index: str | Path | Searcher, embedder: Any = None, host: str = "127.0.0.1", port: int = 8000,
          allowed_hosts: Sequence[str] | None = None, **kwargs: Any) -> None:
    """Run the app with uvicorn (blocking). ``index``, ``embedder`` and ``kwargs`` go to
    :func:`create_app`.

    ``allowed_hosts`` defaults to the bind address and the loopback names
    (:func:`~soundseek.service.limits.default_allowed_hosts`); pass ``["*"]`` to accept any.
    """
    import uvicorn

    if "torch" in sys.modules:  # requests run the model side by side (model_workers): one thread each
        workers = int(kwargs.get("model_workers") or os.cpu_count() or 1)
        sys.modules["torch"].set_num_threads(max(1, (os.cpu_count() or 1) // workers))

    hosts = list(allowed_hosts) if allowed_hosts else default_allowed_hosts(host)
    app = create_app(index, embedder, allowed_hosts=hosts, **kwargs)
    index_dir = index.index_dir if isinstance(index, Searcher) else index
    install_logging()
    files = app.state.searcher.store.count()
    windows = len(app.state.searcher) - files  # vectors of the windows of long recordings
    print(f"soundseek: serving {index_dir} ({files} files" + (f", {windows} windows of long files" if windows > 0 else "")
          + f") on http://{host}:{port}/ (accepted Host names: {', '.join(hosts)}; "
          + f"{'access tokens required' if kwargs.get('tokens') else 'no access tokens'})")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=30)
