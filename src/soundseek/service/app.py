"""HTTP service over an index: JSON API + a plain HTML/JS search page (METHODS.md §8).

    GET  /                      the search page (static/index.html; ``/?q=dog+barking`` searches on load)
    GET  /api/health            index size, kind, embedder fingerprint
    GET  /api/search?q=&k=&mode=&rerank=   text -> clips (mode semantic | text | hybrid)
    POST /api/search/audio      multipart ``file`` (+ ``k``): query by example / audio -> captions
    GET  /api/clips/{id}/similar?k=   sounds like an indexed clip (itself excluded)
    GET  /api/clips/{id}        metadata of one item
    GET  /api/clips/{id}/audio  the indexed file, with HTTP Range (206) so players can seek
    GET  /openapi.json, /docs   the schema; /docs is Swagger UI from bundled files (no CDN)

Security model: ids are opaque integers looked up in SQLite; no path is ever built from a
request. A file is served only if it was indexed and its resolved path is still the one
recorded at index time (a symlink planted later, or one pointing outside the source folder
at index time, is not served). Uploads are capped (``max_upload_bytes``) and decoded from a
temporary file that is deleted afterwards.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from ..index import peaks as _peaks
from ..index.hybrid import MODES, resolve_mode
from ..index.search import MAX_K, Searcher
from ..index.source import AUDIO_EXTENSIONS
from . import models as M
from .docs import install_docs

STATIC = Path(__file__).resolve().parent / "static"
MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
               ".mp3": "audio/mpeg", ".aiff": "audio/aiff", ".aif": "audio/aiff"}
_ID = re.compile(r"^[0-9]{1,18}$")


def create_app(index: str | Path | Searcher, embedder: Any = None, max_upload_bytes: int = 20 << 20,
               max_query_chars: int = 1000, max_k: int = MAX_K) -> FastAPI:
    """Build the FastAPI app. The embedder/model is loaded once (by the caller) and shared.

    Args:
        index: index directory, or an open :class:`Searcher`.
        embedder: required when ``index`` is a directory.
        max_upload_bytes: uploads above this get 413.
        max_query_chars: longer text queries get 400.
    """
    searcher = index if isinstance(index, Searcher) else Searcher(index, embedder)
    app = FastAPI(title="soundseek", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Language-based audio retrieval: search sounds by text or by example.")
    install_docs(app)  # bundled Swagger UI: /docs works offline
    app.state.searcher = searcher

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path == "/api/search/audio":
            try:
                length = int(request.headers.get("content-length", "0"))
            except ValueError:
                return JSONResponse({"detail": "bad Content-Length"}, status_code=400)
            if length > max_upload_bytes + 65536:
                return JSONResponse({"detail": f"upload too large (limit {max_upload_bytes} bytes)"},
                                    status_code=413)
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
    def search(q: str = Query("", description="text query"), k: int = Query(10, description=f"1..{max_k}"),
               mode: str = Query("auto", description="semantic | text | hybrid | auto (hybrid when the index has text)"),
               text_weight: float | None = Query(None, ge=0.0, le=1.0,
                                                 description="hybrid: weight of the text ranking (default 0.7)"),
               rerank: int = Query(0, description="re-rank this many candidates (0: off)")) -> dict:
        q = q.strip()
        if not q:
            raise HTTPException(400, "empty query: type a few words describing the sound")
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
            hits = searcher.search_text(q, k=k, rerank=rerank, mode=used, text_weight=text_weight)
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        return {"query": q, "k": k, "mode": used, "hits": with_peaks(hits),
                "took_ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.get("/api/clips/{clip_id}/similar", response_model=M.SimilarResponse, responses=M.ERRORS)
    def similar(clip_id: str, k: int = Query(10, description=f"1..{max_k}")) -> dict:
        check_k(k)
        t0 = time.perf_counter()
        hits = searcher.similar(item_id(clip_id), k)
        if hits is None:
            raise HTTPException(404, "unknown clip id")
        return {"id": int(clip_id), "k": k, "hits": with_peaks(hits),
                "took_ms": round(1000 * (time.perf_counter() - t0), 2)}

    @app.post("/api/search/audio", response_model=M.AudioSearchResponse, responses=M.ERRORS)
    def search_audio(file: UploadFile = File(..., description="audio file (wav/flac/ogg/mp3/aiff)"),
                     k: int = Form(10)) -> dict:
        check_k(k)
        from ..audio.io import AudioDecodeError

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
            try:
                hits = searcher.search_audio(Path(tmp), k=k)
            except (AudioDecodeError, ValueError) as e:
                reason = (getattr(e, "reason", None) or str(e)).replace(tmp, file.filename or "upload")
                raise HTTPException(415, f"not a readable audio file ({reason})") from None
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

    @app.get("/api/clips/{clip_id}/audio", response_class=FileResponse,
             responses={206: {"description": "partial content (Range)"}, 404: {"description": "unknown id"}})
    def clip_audio(clip_id: str):
        path = searcher.audio_file(item_id(clip_id))
        if path is None:
            raise HTTPException(404, "no audio for this id")
        media = MEDIA_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"},
                            content_disposition_type="inline", filename=path.name)

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def serve(index_dir: str | Path, embedder: Any, host: str = "127.0.0.1", port: int = 8000, **kwargs: Any) -> None:
    """Run the app with uvicorn (blocking). ``kwargs`` go to :func:`create_app`."""
    import uvicorn

    app = create_app(index_dir, embedder, **kwargs)
    print(f"soundseek: serving {index_dir} ({len(app.state.searcher)} items) on http://{host}:{port}/")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=30)
