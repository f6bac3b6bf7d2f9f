"""HTTP service over an index: JSON API + a plain HTML/JS search page (METHODS.md §8).

    GET  /                      the search page (static/index.html; ``/?q=dog+barking`` searches on load)
    GET  /api/health            index size, kind, embedder fingerprint
    GET  /api/search?q=&k=&mode=&rerank=   text -> clips (mode semantic | text | hybrid)
    POST /api/search/audio      multipart ``file`` (+ ``k``): query by example / audio -> captions
    GET  /api/clips/{id}/similar?k=   sounds like an indexed clip (itself excluded)
    GET  /api/clips/{id}        metadata of one item
    GET  /api/clips/{id}/audio  the indexed file, with HTTP Range (206) so players can seek
    GET  /openapi.json, /docs   the schema; /docs is Swagger UI from bundled files (no CDN)

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

import contextvars
import os
import re
import tempfile
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ..index import peaks as _peaks
from ..index.hybrid import MODES, resolve_mode
from ..index.search import MAX_K, Searcher
from ..index.source import AUDIO_EXTENSIONS
from . import models as M
from .docs import install_docs
from .errors import install_error_handlers, install_logging
from .files import audio_response
from .live import follow_rebuilds
from .limits import (BodyLimit, HostCheck, UploadGate, UploadLimits, UploadRefused, clean_query, decode_upload,
                     default_allowed_hosts)

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
               ".mp3": "audio/mpeg", ".aiff": "audio/aiff", ".aif": "audio/aiff"}
_ID = re.compile(r"^[0-9]{1,18}$")
UPLOAD_FRAMING = 16 << 10  # multipart headers/boundaries allowed around an upload of the maximum size


def create_app(index: str | Path | Searcher, embedder: Any = None, max_upload_bytes: int = 20 << 20,
               max_query_chars: int = 1000, max_k: int = MAX_K, allowed_hosts: Sequence[str] | None = None,
               cors_origins: Sequence[str] | None = None, upload_limits: UploadLimits | None = None,
               model_workers: int | None = None, tokens: str | Path | None = None,
               uploads_per_minute: int = 30) -> FastAPI:
    """Build the FastAPI app. The embedder/model is loaded once (by the caller) and shared.

    Args:
        index: index directory, or an open :class:`Searcher`.
        embedder: required when ``index`` is a directory.
        max_upload_bytes: uploads above this get 413 (counted while receiving).
        max_query_chars: longer text queries get 400.
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
    searcher = index if isinstance(index, Searcher) else Searcher(index, embedder)
    # Model work (decoding an upload, embedding, searching) runs on a few dedicated threads:
    # concurrent requests queue, and memory is allocated (and reused) by those threads only
    # instead of by every worker thread of the server (measured in docs/benchmarks.md).
    model_pool = ThreadPoolExecutor(max_workers=max(1, int(model_workers or os.cpu_count() or 1)),
                                    thread_name_prefix="soundseek-model")

    def on_model(fn, *args: Any, **kwargs: Any):  # (in the request's context: its pinned index)
        return model_pool.submit(contextvars.copy_context().run, fn, *args, **kwargs).result()
    limits = upload_limits or UploadLimits()
    gate = UploadGate(limits.concurrent, limits.waiting)
    from ..audio import io as _decoder  # noqa: F401  (imported now, not during the first upload)
    app = FastAPI(title="soundseek", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Language-based audio retrieval: search sounds by text or by example.")
    install_docs(app)  # bundled Swagger UI: /docs works offline
    app.state.searcher = searcher
    app.state.model_pool = model_pool
    install_error_handlers(app)
    searcher = app.state.searcher = follow_rebuilds(app, searcher)  # each request pinned to one index
    if cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "HEAD", "POST"],
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

    def check_k(k: int) -> int:
        if not 1 <= k <= max_k:
            raise HTTPException(400, f"k must be between 1 and {max_k}, got {k}")
        return k

    def item_id(clip_id: str) -> int:
        if not _ID.match(clip_id):
            raise HTTPException(404, "unknown clip id")
        return int(clip_id)

    def with_peaks(hits: list[dict]) -> list[dict]:
        """Add the waveform peaks and a player URL that starts at the hit's moment."""
        got = _peaks.get_many(searcher.store.con, [h["id"] for h in hits])
        out = []
        for h in hits:
            url = None
            if h.get("path"):
                url = f"/api/clips/{h['id']}/audio"
                if h.get("start") is not None and h.get("end") is not None:
                    url += f"#t={h['start']:.2f},{h['end']:.2f}"  # media fragment: players start there
            out.append({**h, "peaks": got.get(h["id"]), "audio_url": url})
        return out

    @app.get("/api/health", response_model=M.Health)
    def health() -> dict:
        m = searcher.manifest
        has_text = searcher.has_text
        return {"status": "ok", "items": searcher.store.count(), "vectors": len(searcher), "kind": searcher.kind,
                "backend": m["backend"], "dim": m["dim"], "fingerprint": m["fingerprint"], "has_text": has_text,
                "default_mode": resolve_mode(None, has_text)}

    @app.get("/api/search", response_model=M.SearchResponse, responses=M.ERRORS)
    def search(request: Request, q: str = Query("", description="text query"),
               k: int = Query(10, description=f"1..{max_k}"),
               mode: str = Query("auto", description="semantic | text | hybrid | auto (hybrid when the index has text)"),
               text_weight: float | None = Query(None, ge=0.0, le=1.0,
                                                 description="hybrid: weight of the text ranking (default 0.7)"),
               rerank: int = Query(0, description="re-rank this many candidates (0: off)")) -> dict:
        try:
            q = clean_query(q, _raw_param(request.scope.get("query_string", b""), b"q"))
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        if len(q) > max_query_chars:
            raise HTTPException(400, f"query too long ({len(q)} characters, limit {max_query_chars})")
        check_k(k)
        if not 0 <= rerank <= max_k:
            raise HTTPException(400, f"rerank must be between 0 and {max_k}, got {rerank}")
        if mode not in (*MODES, "auto"):
            raise HTTPException(400, f"mode must be one of {', '.join(MODES)} or auto, got {mode!r}")
        used = resolve_mode(mode, searcher.has_text)
        t0 = time.perf_counter()
        try:
            hits = on_model(searcher.search_text, q, k=k, rerank=rerank, mode=used, text_weight=text_weight)
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        return {"query": q, "k": k, "mode": used, "hits": with_peaks(hits),
                "took_ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.get("/api/clips/{clip_id}/similar", response_model=M.SimilarResponse, responses=M.ERRORS)
    def similar(clip_id: str, k: int = Query(10, description=f"1..{max_k}")) -> dict:
        check_k(k)
        t0 = time.perf_counter()
        hits = on_model(searcher.similar, item_id(clip_id), k)
        if hits is None:
            raise HTTPException(404, "unknown clip id")
        return {"id": int(clip_id), "k": k, "hits": with_peaks(hits),
                "took_ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.post("/api/search/audio", response_model=M.AudioSearchResponse, responses=M.ERRORS)
    def search_audio(file: UploadFile = File(..., description="audio file (wav/flac/ogg/mp3/aiff)"),
                     k: int = Form(10)) -> dict:
        check_k(k)
        suffix = Path(file.filename or "").suffix.lower()
        suffix = suffix if suffix in AUDIO_EXTENSIONS else ".bin"
        fd, tmp = tempfile.mkstemp(prefix="soundseek-upload-", suffix=suffix)
        try:
            size = 0
            with os.fdopen(fd, "wb") as out:
                while chunk := file.file.read(1 << 20):
                    size += len(chunk)
                    if size > max_upload_bytes:
                        raise HTTPException(413, f"upload too large (limit {max_upload_bytes} bytes)")
                    out.write(chunk)
            if size == 0:
                raise HTTPException(400, "empty upload")
            t0 = time.perf_counter()
            sr = int(searcher.embedder.sample_rate)

            try:  # decoded on this thread, gated: the model threads stay free for text searches
                wave = gate.run(decode_upload, Path(tmp), sr, searcher.manifest.get("max_seconds"), limits,
                                name=Path(file.filename or "upload").name)
            except UploadRefused as e:
                raise HTTPException(e.status, e.detail, headers=e.headers) from None
            hits = on_model(searcher.search_audio, wave, k=k, sample_rate=sr)
        finally:
            os.unlink(tmp)
        return {"filename": file.filename, "k": k, "hits": with_peaks(hits),
                "took_ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.get("/api/clips/{clip_id}", response_model=M.ClipInfo, responses=M.ERRORS)
    def clip(clip_id: str) -> dict:
        info = searcher.get(item_id(clip_id))
        if info is None:
            raise HTTPException(404, "unknown clip id")
        return info

    @app.head("/api/clips/{clip_id}/audio", include_in_schema=False)
    @app.get("/api/clips/{clip_id}/audio", response_class=FileResponse,
             responses={206: {"description": "partial content (Range)"}, 404: {"description": "unknown id"},
                        416: {"description": "range not satisfiable"}})
    def clip_audio(clip_id: str, request: Request):
        i = item_id(clip_id)
        rows = searcher.store.items([i])
        if not rows or not rows[i]["path"]:
            raise HTTPException(404, "no audio for this id")
        row = rows[i]
        media = MEDIA_TYPES.get(Path(row["path"]).suffix.lower(), "application/octet-stream")
        return audio_response(row, searcher.manifest.get("root"), request.headers.get("range"), media,
                              request.scope, head=request.method == "HEAD")

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _raw_param(query_string: bytes, name: bytes) -> bytes | None:
    """The percent-decoded raw bytes of the first ``name=`` parameter (to check its UTF-8)."""
    from urllib.parse import unquote_to_bytes

    for part in query_string.split(b"&"):
        k, _, v = part.partition(b"=")
        if unquote_to_bytes(k.replace(b"+", b" ")) == name:
            return unquote_to_bytes(v.replace(b"+", b" "))
    return None


def serve(index_dir: str | Path, embedder: Any, host: str = "127.0.0.1", port: int = 8000,
          allowed_hosts: Sequence[str] | None = None, **kwargs: Any) -> None:
    """Run the app with uvicorn (blocking). ``kwargs`` go to :func:`create_app`.

    ``allowed_hosts`` defaults to the bind address and the loopback names
    (:func:`~soundseek.service.limits.default_allowed_hosts`); pass ``["*"]`` to accept any.
    """
    import uvicorn

    if "torch" in sys.modules:  # requests run the model side by side (model_workers): one thread each
        workers = int(kwargs.get("model_workers") or os.cpu_count() or 1)
        sys.modules["torch"].set_num_threads(max(1, (os.cpu_count() or 1) // workers))

    hosts = list(allowed_hosts) if allowed_hosts else default_allowed_hosts(host)
    app = create_app(index_dir, embedder, allowed_hosts=hosts, **kwargs)
    install_logging()
    print(f"soundseek: serving {index_dir} ({len(app.state.searcher)} items) on http://{host}:{port}/ "
          f"(accepted Host names: {', '.join(hosts)}; "
          f"{'access tokens required' if kwargs.get('tokens') else 'no access tokens'})")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=30)
