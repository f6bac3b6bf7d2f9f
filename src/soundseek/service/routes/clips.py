"""Clip routes: the index's health, one clip's metadata, and its audio (with HTTP Range).

Ids are opaque integers looked up in SQLite; no path is ever built from a request
(``service/files.py`` opens the recorded file once, no-follow, and streams that descriptor).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse

from ...index.hybrid import resolve_mode
from .. import models as M
from ..deps import ServiceContext, get_ctx, item_id, reject_unknown_params
from ..files import audio_response

router = APIRouter(dependencies=[Depends(reject_unknown_params)])

MEDIA_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
               ".mp3": "audio/mpeg", ".aiff": "audio/aiff", ".aif": "audio/aiff"}


@router.get("/api/health", response_model=M.Health)
def health(ctx: ServiceContext = Depends(get_ctx)) -> dict:
    s = ctx.searcher
    m = s.manifest
    if m["backend"] == "milvus":  # a server round trip (count(*), strong consistency) per health check:
        vectors = s.stored_vectors()  # the store's files + windows are what the collection holds
    else:
        vectors = len(s)
    return {"status": "ok", "items": s.store.count(), "vectors": vectors, "kind": s.kind, "backend": m["backend"],
            "dim": m["dim"], "fingerprint": m["fingerprint"], "has_text": s.has_text,
            "default_mode": resolve_mode(None, s.has_text), "max_k": ctx.max_k,
            "max_query_chars": ctx.max_query_chars}


@router.get("/api/clips/{clip_id}", response_model=M.ClipInfo, responses=M.ERRORS, response_model_exclude_unset=True)
def clip(clip_id: str, ctx: ServiceContext = Depends(get_ctx)) -> dict:
    info = ctx.searcher.get(item_id(clip_id))
    if info is None:
        raise HTTPException(404, "unknown clip id")
    return info


@router.head("/api/clips/{clip_id}/audio", include_in_schema=False)
@router.get("/api/clips/{clip_id}/audio", response_class=FileResponse,
            responses={206: {"description": "partial content (Range)"}, 404: {"description": "unknown id"},
                       416: {"description": "range not satisfiable"}})
def clip_audio(clip_id: str, request: Request, download: bool = Query(False, description="as an attachment"),
               ctx: ServiceContext = Depends(get_ctx)):
    i = item_id(clip_id)
    rows = ctx.searcher.store.items([i])
    if not rows or not rows[i]["path"]:
        raise HTTPException(404, "no audio for this id")
    row = rows[i]
    media = MEDIA_TYPES.get(Path(row["path"]).suffix.lower(), "application/octet-stream")
    response = audio_response(row, ctx.searcher.manifest.get("root"), request.headers.get("range"), media,
                              request.scope, head=request.method == "HEAD")
    if download:
        from urllib.parse import quote

        name = Path(row["key"]).name
        response.headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(name)}"
    return response
