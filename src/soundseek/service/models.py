"""Typed response bodies of the HTTP API (pydantic), so ``/openapi.json`` documents every
response and the page can rely on the field names. A hit has the keys of a local search
(:meth:`~soundseek.index.search.Searcher.search_text`): the same JSON from ``soundseek search
--json`` with or without ``--server``."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Why(BaseModel):
    """Why a hit matched."""

    model_config = ConfigDict(extra="allow")
    semantic: float | None = Field(None, description="cosine similarity of query and sound (+ bias)")
    text: float | None = Field(None, description="BM25 score of the file's words (higher is better)")
    matched: list[str] = Field(default_factory=list, description="words of the file's names/tags that matched")


class Hit(BaseModel):
    """One result; keys beyond these (added by the index) pass through unchanged."""

    model_config = ConfigDict(extra="allow")
    id: int = Field(description="opaque clip id (use with /api/clips/{id})")
    score: float | None = Field(None, description="semantic similarity of query and sound "
                                                  "(None: text mode without a model)")
    confidence: str | None = Field(None, description="strong | possible | weak (calibrated)")
    path: str | None = Field(None, description="path relative to the indexed folder")
    abs_path: str | None = Field(None, description="absolute path of the file on the server")
    name: str | None = Field(None, description="file name")
    folder: str | None = Field(None, description="folder, relative to the indexed folder")
    duration: float | None = Field(None, description="file duration, seconds")
    sample_rate: int | None = None
    channels: int | None = None
    format: str | None = None
    captions: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    start: float | None = Field(None, description="start of the matching moment, seconds from the file start")
    end: float | None = Field(None, description="end of the matching moment, seconds")
    why: Why | None = None
    text: str | None = Field(None, description="caption text (caption indexes)")
    clip: str | None = Field(None, description="clip the caption belongs to (caption indexes)")
    index_score: float | None = Field(None, description="first-stage score of a re-ranked hit")


class Page(BaseModel):
    k: int = Field(description="hits per page")
    offset: int = Field(description="hits skipped (the next page starts at offset + k)")
    total: int = Field(description="files the filters let through (all files without filters)")
    filters: dict[str, Any] = Field(default_factory=dict, description="the filters applied")
    message: str | None = Field(None, description="verdict in words, e.g. 'no good match; closest sounds below'")
    hits: list[Hit]
    peaks: dict[str, str] = Field(default_factory=dict,
                                  description="clip id -> waveform thumbnail (base64 of per-slice peak bytes)")
    collections: dict[str, list[str]] = Field(default_factory=dict,
                                              description="clip id -> collections holding that file")
    took_ms: float


class SearchResponse(Page):
    query: str
    mode: str = Field(description="semantic | text | hybrid (the one used)")


class AudioSearchResponse(Page):
    filename: str | None


class SimilarResponse(Page):
    id: int
    name: str | None = Field(None, description="file name of the clip the hits sound like")


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
    max_k: int = Field(description="most hits per page")
    max_query_chars: int = Field(description="longest text query")


class ClipInfo(Hit):
    score: float | None = Field(None, description="absent: metadata, not a search result")
    size: int | None = None
    sha1: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    bias: float = 0.0


class CollectionInfo(BaseModel):
    name: str
    count: int = Field(description="files in it")
    created: float = Field(description="Unix time")


class CollectionList(BaseModel):
    collections: list[CollectionInfo]


class MissingFile(BaseModel):
    sha1: str = Field(description="content hash of a file no longer in the index")
    key: str = Field(description="the last path it had")


class CollectionView(BaseModel):
    name: str
    total: int = Field(description="files in the collection, in the index or not")
    offset: int = Field(description="files skipped")
    hits: list[ClipInfo] = Field(description="this page's files that are in the index")
    missing: list[MissingFile] = Field(description="this page's files no longer in the index")
    peaks: dict[str, str] = Field(default_factory=dict)
    collections: dict[str, list[str]] = Field(default_factory=dict)


class Membership(BaseModel):
    id: int
    collections: list[str] = Field(description="collections now holding this clip's file")


class Error(BaseModel):
    """Every 4xx/5xx body (``soundseek.service.errors``)."""

    status: int = Field(description="the HTTP status")
    error: str = Field(description="short code, e.g. bad_request, not_found")
    detail: str = Field(description="what was wrong, one line")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Error, "description": "bad input (an unknown parameter names the valid ones)"},
    403: {"model": Error, "description": "the index folder is read-only (collections)"},
    404: {"model": Error, "description": "unknown id or collection"},
    413: {"model": Error, "description": "upload too large"},
    415: {"model": Error, "description": "not a readable audio file"},
    422: {"model": Error, "description": "a parameter of the wrong type or out of its range"},
}
