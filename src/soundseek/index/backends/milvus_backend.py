"""Milvus backend via ``pymilvus.MilvusClient``: Milvus Lite (a local ``*.db`` file URI) or a
server URI (``http://host:19530``, ``https://host``) with the same code. Metric IP; index FLAT
(exact, default) or AUTOINDEX / IVF_FLAT / HNSW by name. Collections are created with
``Strong`` consistency, so a search sees every write acknowledged before it (several search
processes sharing one server collection see an indexer's updates as soon as it has written them).

URIs (:func:`check_uri`): a file path ending in ``.db`` (Milvus Lite; one process at a time),
``http://host:port`` or ``https://host:port``. Credentials never go in the URI (it is stored in
the index manifest and shown in messages) nor on a command line: a server that needs them reads
``user:password`` or an API key from the environment variable :data:`TOKEN_ENV`. Connecting
gives up after :data:`TIMEOUT_ENV` seconds (default :data:`DEFAULT_TIMEOUT`) with a one-line
:class:`MilvusUnavailableError` naming the URI.

Install: ``pip install pymilvus milvus-lite`` (extra ``soundseek[milvus]``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .base import BACKENDS, VectorBackend

MILVUS_INDEX_TYPES = ("FLAT", "AUTOINDEX", "IVF_FLAT", "HNSW")
_CHUNK = 2000  # rows per insert / ids per delete request
_MAX_TOPK = 16384  # Milvus' limit on k and on queries per request
TOKEN_ENV = "SOUNDSEEK_MILVUS_TOKEN"
TIMEOUT_ENV = "SOUNDSEEK_MILVUS_TIMEOUT"
DEFAULT_TIMEOUT = 10.0  # seconds to connect (pymilvus' own default)
URI_FORMS = "a Milvus Lite file (path/to/file.db), http://host:19530 or https://host:port"


class MilvusUnavailableError(ConnectionError):
    """No Milvus answered at the URI (server down, wrong address, refused credentials)."""


def check_uri(uri: str | Path) -> str:
    """``uri`` if it is one of :data:`URI_FORMS` without credentials in it; ValueError otherwise."""
    u = str(uri)
    if "://" in u:
        parts = urlsplit(u)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"Milvus URI {u!r}: scheme {parts.scheme!r} is not served; give {URI_FORMS}")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"Milvus URI {parts.scheme}://...@{parts.hostname}: credentials do not go in the URI "
                             f"(it is stored in the index manifest); set ${TOKEN_ENV}=user:password (or an API key)")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as e:
            raise ValueError(f"Milvus URI {u!r}: {e}") from None
        if not parts.hostname:
            raise ValueError(f"Milvus URI {u!r} names no host; give {URI_FORMS}")
        return u
    if not u.endswith(".db"):
        raise ValueError(f"Milvus URI {u!r}: a Milvus Lite file must end in .db; give {URI_FORMS}")
    return u


def _timeout() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        t = float(raw) if raw else DEFAULT_TIMEOUT
    except ValueError:
        raise ValueError(f"${TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not 0 < t <= 3600:
        raise ValueError(f"${TIMEOUT_ENV}={raw!r} must lie in (0, 3600] seconds")
    return t


def _client(uri: str, token: str | None):
    from ...extras import require

    pymilvus = require("pymilvus")
    uri = check_uri(uri)
    timeout = _timeout()
    try:
        return pymilvus.MilvusClient(uri=uri, token=token or os.environ.get(TOKEN_ENV, ""), timeout=timeout)
    except pymilvus.exceptions.MilvusException as e:
        why = " ".join(str(getattr(e, "message", "") or e).split())
        if "://" not in uri:
            raise MilvusUnavailableError(f"cannot open the Milvus Lite file {uri} ({why})") from None
        raise MilvusUnavailableError(f"no Milvus server answered at {uri} ({why}; gave up after at most "
                                     f"{timeout:g} s, ${TIMEOUT_ENV})") from None


def probe(uri: str | Path, token: str | None = None) -> None:
    """Connect to ``uri`` and hang up: a wrong or unreachable URI fails here, in at most
    :data:`TIMEOUT_ENV` seconds, before any work that would need it."""
    _client(str(uri), token).close()


@BACKENDS.register("milvus")
class MilvusBackend(VectorBackend):
    """A Milvus collection of (id INT64 primary key, vector FLOAT_VECTOR(dim), metadata JSON).

    Args:
        dim: vector width.
        uri: ``path/to/file.db`` (Milvus Lite) or ``http(s)://host:port`` (server; :func:`check_uri`).
        collection: collection name; created if missing (an existing one must have ``dim``).
        index_type: FLAT | AUTOINDEX | IVF_FLAT | HNSW.
        token: server credentials for direct use from Python (never stored); default ``$SOUNDSEEK_MILVUS_TOKEN``.
        drop_existing: drop the collection first.
    """

    name = "milvus"

    def __init__(self, dim: int, uri: str | Path = "milvus.db", collection: str = "soundseek",
                 index_type: str = "FLAT", token: str | None = None, drop_existing: bool = False,
                 **_: Any) -> None:
        super().__init__(dim)
        if index_type not in MILVUS_INDEX_TYPES:
            raise ValueError(f"Invalid milvus index_type {index_type!r}. Valid: {', '.join(MILVUS_INDEX_TYPES)}")
        self.uri, self.collection, self.index_type = str(uri), collection, index_type
        self.client = _client(self.uri, token)
        if drop_existing and self.client.has_collection(collection):
            self.client.drop_collection(collection)
        if self.client.has_collection(collection):
            have = self._collection_dim()
            if have != self.dim:
                raise ValueError(f"Milvus collection {collection!r} at {self.uri} has dim {have}, expected {self.dim}")
        else:
            self._create()
        self.client.load_collection(collection)

    def _create(self) -> None:
        from pymilvus import DataType  # type: ignore

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("metadata", DataType.JSON)
        idx = self.client.prepare_index_params()
        params = {"nlist": 1024} if self.index_type == "IVF_FLAT" else (
            {"M": 32, "efConstruction": 200} if self.index_type == "HNSW" else {})
        idx.add_index(field_name="vector", index_type=self.index_type, metric_type="IP", params=params)
        self.client.create_collection(self.collection, schema=schema, index_params=idx,
                                      consistency_level="Strong")

    def _collection_dim(self) -> int:
        desc = self.client.describe_collection(self.collection)
        for f in desc["fields"]:
            if f["name"] == "vector":
                return int(f["params"]["dim"])
        raise ValueError(f"Milvus collection {self.collection!r} has no 'vector' field")

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: list[dict] | None = None) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        v = self._check(vectors, "vectors")
        if len(ids) != len(v) or len(np.unique(ids)) != len(ids):
            raise ValueError(f"need one distinct id per vector, got {len(ids)} ids for {len(v)} vectors")
        for s in range(0, len(ids), _CHUNK):
            rows = [{"id": int(i), "vector": vec, "metadata": (metadata[s + j] if metadata else {})}
                    for j, (i, vec) in enumerate(zip(ids[s:s + _CHUNK].tolist(), v[s:s + _CHUNK].tolist()))]
            self.client.upsert(self.collection, rows)

    def remove(self, ids: np.ndarray) -> int:
        ids = [int(i) for i in np.asarray(ids, dtype=np.int64).reshape(-1)]
        before = len(self)
        for s in range(0, len(ids), _CHUNK):
            self.client.delete(self.collection, ids=ids[s:s + _CHUNK])
        return before - len(self)

    def search_arrays(self, queries: np.ndarray, k: int, filter: str = "") -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` by inner product; ``filter``: a Milvus boolean expression over ``id`` and the
        ``metadata`` JSON given to :meth:`add` (e.g. ``metadata["tag"] == "dog" and id > 10``);
        rows past the matches keep id -1 and score -inf."""
        q = self._check(queries, "queries")
        kk = min(int(k), len(self), _MAX_TOPK)
        scores = np.full((len(q), kk), -np.inf, np.float32)
        ids = np.full((len(q), kk), -1, np.int64)
        if kk == 0:
            return scores, ids
        for s in range(0, len(q), 1024):
            res = self.client.search(self.collection, data=q[s:s + 1024].tolist(), limit=kk, filter=filter,
                                     search_params={"metric_type": "IP"}, output_fields=[])
            for r, hits in enumerate(res):
                for j, h in enumerate(hits):
                    ids[s + r, j] = int(h["id"])
                    scores[s + r, j] = float(h["distance"])
        return scores, ids

    def metadata(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        rows = self.client.get(self.collection, ids=[int(i) for i in ids], output_fields=["metadata"])
        got = {int(r["id"]): r.get("metadata") or {} for r in rows}
        return [json.loads(got[i]) if isinstance(got.get(i), str) else got.get(i, {}) for i in ids]

    def all_ids(self) -> np.ndarray:
        out: list[int] = []
        it = self.client.query_iterator(self.collection, batch_size=10000, filter="id >= 0", output_fields=["id"])
        while True:
            batch = it.next()
            if not batch:
                it.close()
                break
            out.extend(int(r["id"]) for r in batch)
        return np.asarray(sorted(out), np.int64)

    def __len__(self) -> int:
        res = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(res[0]["count(*)"])

    def save(self, path: str | Path | None = None) -> None:
        """Milvus persists by itself; flush so the segments are sealed on disk."""
        flush = getattr(self.client, "flush", None)
        if callable(flush):
            flush(self.collection)

    @classmethod
    def load(cls, path: str | Path | None = None, **options: Any) -> "MilvusBackend":
        uri = str(options.pop("uri", path or "milvus.db"))
        collection = options.get("collection", "soundseek")
        client = _client(uri, options.get("token"))
        if not client.has_collection(collection):
            raise FileNotFoundError(f"No Milvus collection {collection!r} at {uri}")
        client.close()
        self = cls.__new__(cls)
        self.uri, self.collection, self.client = uri, collection, _client(uri, options.get("token"))
        VectorBackend.__init__(self, self._collection_dim())
        self.index_type = options.get("index_type", "FLAT")
        self.client.load_collection(collection)
        return self

    def close(self) -> None:
        self.client.close()
