"""Collection routes: named sets of sounds kept beside the index (:mod:`soundseek.index.collections`).

    GET    /api/collections                      names and sizes
    GET    /api/collections/{name}?k=&offset=    its files (hits, as a search returns them), a page at a time
    PUT    /api/collections/{name}               create an empty one
    DELETE /api/collections/{name}               delete it (the files stay)
    PUT    /api/collections/{name}/items/{id}    add a clip (creates the collection)
    DELETE /api/collections/{name}/items/{id}    remove a clip

Changes use PUT/DELETE, which a page of another site cannot send without CORS permission.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from ...index.collections import MAX_ITEMS, Collections, check_name
from ...index.search import MAX_K
from .. import models as M
from ..deps import ServiceContext, get_ctx, item_id, reject_unknown_params

router = APIRouter(dependencies=[Depends(reject_unknown_params)])


def collections(ctx: ServiceContext = Depends(get_ctx)) -> Collections:
    return Collections(ctx.searcher.store)


def _call(fn, *args: Any) -> Any:
    try:
        return fn(*args)
    except KeyError as e:
        raise HTTPException(404, str(e.args[0] if e.args else e)) from None
    except ValueError as e:
        raise HTTPException(400, str(e)) from None
    except PermissionError as e:
        raise HTTPException(403, f"collections cannot be changed: {e}") from None


@router.get("/api/collections", response_model=M.CollectionList, responses=M.ERRORS)
def list_collections(cols: Collections = Depends(collections)) -> dict:
    return {"collections": cols.names()}


@router.get("/api/collections/{name}", response_model=M.CollectionView, responses=M.ERRORS,
            response_model_exclude_unset=True)
def show_collection(name: str, k: int = Query(MAX_K, ge=1, le=MAX_K, description=f"files per page, 1..{MAX_K}"),
                    offset: int = Query(0, ge=0, le=MAX_ITEMS, description="files to skip"),
                    cols: Collections = Depends(collections), ctx: ServiceContext = Depends(get_ctx)) -> dict:
    items = _call(cols.items, name)
    hits, missing = [], []
    for it in items[offset:offset + k]:
        info = ctx.searcher.get(it["id"]) if it["id"] is not None else None
        if info is None:
            missing.append({"sha1": it["sha1"], "key": it["key"]})
        else:
            hits.append(info)
    ids = [h["id"] for h in hits]
    return {"name": check_name(name), "total": len(items), "offset": offset, "hits": hits, "missing": missing,
            "peaks": {str(i): p for i, p in ctx.searcher.peaks(ids).items()},
            "collections": {str(i): c for i, c in cols.membership(ids).items()}}


@router.put("/api/collections/{name}", response_model=M.CollectionList, responses=M.ERRORS)
def create_collection(name: str, cols: Collections = Depends(collections)) -> dict:
    _call(cols.create, name)
    return {"collections": cols.names()}


@router.delete("/api/collections/{name}", response_model=M.CollectionList, responses=M.ERRORS)
def delete_collection(name: str, cols: Collections = Depends(collections)) -> dict:
    _call(cols.delete, name)
    return {"collections": cols.names()}


@router.put("/api/collections/{name}/items/{clip_id}", response_model=M.Membership, responses=M.ERRORS)
def add_item(name: str, clip_id: str, cols: Collections = Depends(collections)) -> dict:
    i = item_id(clip_id)
    _call(cols.add, name, [i])
    return {"id": i, "collections": cols.membership([i]).get(i, [])}


@router.delete("/api/collections/{name}/items/{clip_id}", response_model=M.Membership, responses=M.ERRORS)
def remove_item(name: str, clip_id: str, cols: Collections = Depends(collections)) -> dict:
    i = item_id(clip_id)
    _call(cols.remove, name, [i])
    return {"id": i, "collections": cols.membership([i]).get(i, [])}
