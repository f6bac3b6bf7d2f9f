"""Search routes: text -> clips, an uploaded example -> clips, a clip -> similar clips.

Every answer carries one page of hits (``k`` from ``offset``), the ``total`` number of files
the filters let through, and ``message`` (the calibration's verdict, e.g. "no good match;
closest sounds below", or null). Hits have the same keys as a local search
(:meth:`~soundseek.index.search.Searcher.search_text`); what only the page uses comes beside
them: ``peaks`` (clip id -> base64 waveform bytes) and ``collections`` (clip id -> names of
the collections holding it).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Depends, File, Form, HTTPException, Query, Request, UploadFile

from ...index.calibration import verdict
from ...index.collections import Collections
from ...index.filters import check_where
from ...index.hybrid import MODES, resolve_mode
from ...index.search import MAX_K, validate_query
from ...index.source import AUDIO_EXTENSIONS
from .. import models as M
from ..deps import Filters, ServiceContext, filters, get_ctx, item_id, paging, reject_unknown_params
from ..limits import UploadRefused, clean_query, decode_upload

router = APIRouter(dependencies=[Depends(reject_unknown_params)])


def page_of(ctx: ServiceContext, fn: Callable[..., Any], *args: Any, k: int, offset: int, where: Filters,
            **kwargs: Any) -> list[dict] | None:
    """``fn(*args, k=k, offset=offset, where=where, **kwargs)`` on a model thread; a refused
    upload keeps its status, another bad value found by the index (a ValueError) is a 400."""
    if k > ctx.max_k:
        raise HTTPException(400, f"k must be at most {ctx.max_k}, got {k}")
    if offset + k > MAX_K:
        raise HTTPException(400, f"offset + k must be at most {MAX_K} (the deepest page), got {offset + k}")
    try:
        return ctx.on_model(fn, *args, k=k, offset=offset, where=where or None, **kwargs)
    except UploadRefused as e:
        raise HTTPException(e.status, e.detail, headers=e.headers) from None
    except ValueError as e:
        raise HTTPException(400, str(e)) from None


def answer(ctx: ServiceContext, hits: list[dict], k: int, offset: int, where: Filters, t0: float,
           exclude: int | None = None, **extra: Any) -> dict:
    """The response body shared by the three searches; ``exclude``: an item never among the
    hits (the clip a similar search starts from), not counted in the total."""
    ids = [h["id"] for h in hits]
    total = ctx.searcher.count(where or None)
    if exclude is not None and _passes(ctx, exclude, where):
        total -= 1
    return {**extra, "k": k, "offset": offset, "total": total, "filters": where,
            "message": verdict(hits) if offset == 0 else None, "hits": hits,
            "peaks": {str(i): p for i, p in ctx.searcher.peaks(ids).items()},
            "collections": {str(i): c for i, c in Collections(ctx.searcher.store).membership(ids).items()},
            "took_ms": round(1000 * (time.perf_counter() - t0), 2)}


def _passes(ctx: ServiceContext, item: int, where: Filters) -> bool:
    """Whether item ``item`` passes the filters (the index's own condition, :mod:`~soundseek.index.filters`)."""
    return ctx.searcher.store.passes(item, check_where(where))


@router.get("/api/search", response_model=M.SearchResponse, responses=M.ERRORS, response_model_exclude_unset=True)
def search(request: Request, q: str = Query("", max_length=100_000, description="text query"),
           mode: str = Query("auto", description="semantic | text | hybrid | auto (hybrid when the index has text)"),
           text_weight: float | None = Query(None, ge=0.0, le=1.0,
                                             description="hybrid: weight of the text ranking (default 0.7)"),
           rerank: int = Query(0, ge=0, le=MAX_K, description="re-rank this many candidates (0: off)"),
           page: tuple[int, int] = Depends(paging), where: Filters = Depends(filters),
           ctx: ServiceContext = Depends(get_ctx)) -> dict:
    k, offset = page
    try:
        q = clean_query(q, _raw_param(request.scope.get("query_string", b""), b"q"))
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    q = _validated(q, ctx.max_query_chars)
    if mode not in (*MODES, "auto"):
        raise HTTPException(400, f"mode must be one of {', '.join(MODES)} or auto, got {mode!r}")
    used = resolve_mode(mode, ctx.searcher.has_text)
    t0 = time.perf_counter()
    hits = page_of(ctx, ctx.searcher.search_text, q, k=k, offset=offset, where=where, rerank=rerank,
                   mode=used, text_weight=text_weight)
    return answer(ctx, hits, k, offset, where, t0, query=q, mode=used)


def _validated(q: str, limit: int) -> str:
    """The query checked by the rule of a local search (:func:`~soundseek.index.search.validate_query`)."""
    try:
        return validate_query(q, limit)
    except ValueError as e:
        raise HTTPException(400, str(e)) from None


@router.get("/api/clips/{clip_id}/similar", response_model=M.SimilarResponse, responses=M.ERRORS,
            response_model_exclude_unset=True)
def similar(clip_id: str, page: tuple[int, int] = Depends(paging), where: Filters = Depends(filters),
            ctx: ServiceContext = Depends(get_ctx)) -> dict:
    k, offset = page
    i = item_id(clip_id)
    t0 = time.perf_counter()
    hits = page_of(ctx, ctx.searcher.similar, i, k=k, offset=offset, where=where)
    if hits is None:
        raise HTTPException(404, "unknown clip id")
    info = ctx.searcher.get(i) or {}
    return answer(ctx, hits, k, offset, where, t0, exclude=i, id=i,
                  name=info.get("name") or Path(info.get("path") or "").name)


def save_upload(file: UploadFile, dest: int, limit: int) -> int:
    """Copy the upload to the open descriptor ``dest`` (closed here); 413 past ``limit`` bytes
    (the one size check of the file itself; ``BodyLimit`` bounds the request on the wire)."""
    size = 0
    with os.fdopen(dest, "wb") as out:
        while chunk := file.file.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise HTTPException(413, f"upload too large (limit {limit} bytes)")
            out.write(chunk)
    if size == 0:
        raise HTTPException(400, "empty upload")
    return size


@router.post("/api/search/audio", response_model=M.AudioSearchResponse, responses=M.ERRORS,
             response_model_exclude_unset=True)
def search_audio(file: UploadFile = File(..., description="audio file (wav/flac/ogg/mp3/aiff)"),
                 k: int = Form(10, ge=1, le=MAX_K, description=f"hits per page, 1..{MAX_K}"),
                 offset: int = Query(0, ge=0, le=MAX_K - 1, description="hits to skip (the next page: offset + k)"),
                 where: Filters = Depends(filters), ctx: ServiceContext = Depends(get_ctx)) -> dict:
    suffix = Path(file.filename or "").suffix.lower()
    suffix = suffix if suffix in AUDIO_EXTENSIONS else ".bin"
    fd, tmp = tempfile.mkstemp(prefix="soundseek-upload-", suffix=suffix)
    try:
        save_upload(file, fd, ctx.max_upload_bytes)
        t0 = time.perf_counter()
        sr = int(ctx.searcher.embedder.sample_rate)
        name = Path(file.filename or "upload").name
        searcher = ctx.searcher
        try:  # decoded on this thread, gated: the model threads stay free for text searches
            wave = ctx.upload_gate.run(decode_upload, Path(tmp), sr, searcher.manifest.get("max_seconds"),
                                       ctx.upload_limits, name=name)
        except UploadRefused as e:
            raise HTTPException(e.status, e.detail, headers=e.headers) from None
        hits = page_of(ctx, searcher.search_audio, wave, k=k, offset=offset, where=where, sample_rate=sr)
    finally:
        os.unlink(tmp)
    return answer(ctx, hits, k, offset, where, t0, filename=file.filename)


def _raw_param(query_string: bytes, name: bytes) -> bytes | None:
    """The percent-decoded raw bytes of the first ``name=`` parameter (to check its UTF-8)."""
    from urllib.parse import unquote_to_bytes

    for part in query_string.split(b"&"):
        key, _, v = part.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name:
            return unquote_to_bytes(v.replace(b"+", b" "))
    return None
