"""Typed response bodies of the HTTP API (pydantic), so ``/openapi.json`` documents every
response and the page can rely on the field names."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Why(BaseModel):
    """Why a hit matched."""

    semantic: float | None = Field(None, description="cosine similarity of query and sound (+ bias)")
    text: float | None = Field(None, description="BM25 score of the file's words (higher is better)")
    matched: list[str] = Field(default_factory=list, description="words of the file's names/tags that matched")


class Hit(BaseModel):
    id: int = Field(description="opaque clip id (use with /api/clips/{id})")
    score: float = Field(description="ranking score: similarity (semantic), BM25 (text) or fused (hybrid)")
    path: str | None = Field(None, description="path relative to the indexed folder")
    duration: float | None = Field(None, description="file duration, seconds")
    captions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    start: float | None = Field(None, description="start of the matching moment, seconds from the file start")
    end: float | None = Field(None, description="end of the matching moment, seconds")
    why: Why | None = None
    peaks: str | None = Field(None, description="waveform thumbnail: base64 of per-slice peak bytes (0..255)")
    audio_url: str | None = Field(None, description="the file's audio, with a #t=start,end media fragment")
    text: str | None = Field(None, description="caption text (caption indexes)")
    clip: str | None = Field(None, description="clip the caption belongs to (caption indexes)")
    index_score: float | None = Field(None, description="first-stage score of a re-ranked hit")


class SearchResponse(BaseModel):
    query: str
    k: int
    mode: str = Field(description="semantic | text | hybrid (the one used)")
    hits: list[Hit]
    took_ms: float


class AudioSearchResponse(BaseModel):
    filename: str | None
    k: int
    hits: list[Hit]
    took_ms: float


class SimilarResponse(BaseModel):
    id: int
    k: int
    hits: list[Hit]
    took_ms: float


class Health(BaseModel):
    status: str
    items: int = Field(description="indexed files (or captions)")
    vectors: int = Field(description="vectors searched: files plus windows of long recordings")
    kind: str
    backend: str
    dim: int
    fingerprint: str
    has_text: bool = Field(description="the index has words (names, tags) for text/hybrid search")
    default_mode: str


class ClipInfo(Hit):
    sample_rate: int | None = None
    channels: int | None = None
    size: int | None = None
    sha1: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    bias: float = 0.0


class Error(BaseModel):
    """Every 4xx/5xx body (``soundseek.service.errors``)."""

    status: int = Field(description="the HTTP status")
    error: str = Field(description="short code, e.g. bad_request, not_found")
    detail: str = Field(description="what was wrong, one line")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "bad input"},
    404: {"model": Error, "description": "unknown id"},
    413: {"model": Error, "description": "upload too large"},
    415: {"model": Error, "description": "not a readable audio file"},
    422: {"model": Error, "description": "a parameter of the wrong type"},
}
