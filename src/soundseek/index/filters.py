"""Search filters: which files a search may return, as one SQL condition over the ``items`` table.

``where`` is a dict with any of the keys of :data:`FILTER_KEYS` (name, type, meaning)::

    {"min_duration": 0.5, "max_duration": 4.0, "sample_rate": 48000, "channels": 2,
     "format": "wav", "folder": "doors/wood", "tag": "creak"}

Filters restrict the vector search itself (:class:`~soundseek.index.search.Searcher`): a
filtered search returns the best ``k`` files *among those that pass*, never a top-k with the
failures dropped afterwards. Unknown keys and values of the wrong type are a ``ValueError``
that names the valid keys.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["FILTER_KEYS", "check_where", "where_sql", "item_format", "item_folder"]

# (key, type, description): the service builds typed query parameters from this table.
FILTER_KEYS: tuple[tuple[str, type, str], ...] = (
    ("min_duration", float, "shortest duration, seconds"),
    ("max_duration", float, "longest duration, seconds"),
    ("sample_rate", int, "sample rate, Hz (exact)"),
    ("channels", int, "number of channels (exact)"),
    ("format", str, "file format = extension without the dot (wav, flac, ogg, mp3, ...)"),
    ("folder", str, "relative folder prefix (e.g. doors or doors/wood)"),
    ("tag", str, "a tag the file carries (case-insensitive)"),
)
_TYPES = {k: t for k, t, _ in FILTER_KEYS}


def _valid() -> str:
    return ", ".join(k for k, _, _ in FILTER_KEYS)


def check_where(where: dict[str, Any] | None) -> dict[str, Any]:
    """``where`` with values converted and checked ({} for None). ``None`` values are dropped.

    Raises:
        ValueError: an unknown key (the message lists the valid keys) or a bad value.
    """
    if where is None:
        return {}
    if not isinstance(where, dict):
        raise ValueError(f"where must be a dict with keys among: {_valid()}; got {type(where).__name__}")
    out: dict[str, Any] = {}
    for key, value in where.items():
        if key not in _TYPES:
            raise ValueError(f"unknown filter {key!r}. Valid filters: {_valid()}")
        if value is None:
            continue
        want = _TYPES[key]
        if want is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"filter {key} must be a finite number of seconds >= 0, got {value!r}")
            value = float(value)
        elif want is int:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"filter {key} must be a positive integer, got {value!r}")
        else:
            if not isinstance(value, str):
                raise ValueError(f"filter {key} must be a string, got {type(value).__name__}")
            value = value.strip()
            if key == "format":
                value = value.lower().lstrip(".")
                if not value or not value.isalnum():
                    raise ValueError(f"filter format must be a file extension such as wav or flac, got {value!r}")
            elif key == "folder":
                value = value.replace("\\", "/").strip("/")
                if any(p in ("..", ".") for p in value.split("/")):
                    raise ValueError(f"filter folder must be a relative folder inside the library, got {value!r}")
            if not value:
                continue
        out[key] = value
    if "min_duration" in out and "max_duration" in out and out["min_duration"] > out["max_duration"]:
        raise ValueError(f"min_duration {out['min_duration']} is above max_duration {out['max_duration']}")
    return out


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


_COMPARISONS = (("min_duration", "duration >= ?"), ("max_duration", "duration <= ?"),
                ("sample_rate", "sample_rate = ?"), ("channels", "channels = ?"))


def where_sql(where: dict[str, Any]) -> tuple[str, list[Any]]:
    """(SQL condition on ``items``, parameters) of a checked ``where`` ("1" when empty)."""
    conds: list[str] = []
    args: list[Any] = []
    for key, cond in _COMPARISONS:
        if key in where:
            conds.append(cond)
            args.append(where[key])
    if "format" in where:
        conds.append("lower(key) LIKE ? ESCAPE '\\'")
        args.append("%." + _like_escape(where["format"]))
    if "folder" in where:
        conds.append("key LIKE ? ESCAPE '\\'")
        args.append(_like_escape(where["folder"]) + "/%")
    if "tag" in where:
        conds.append("EXISTS (SELECT 1 FROM json_each(items.tags) WHERE lower(json_each.value) = lower(?))")
        args.append(where["tag"])
    return (" AND ".join(conds) or "1"), args


def item_format(key: str) -> str:
    """A file's format as the filters name it: its extension, lower case, without the dot."""
    name = key.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def item_folder(key: str) -> str:
    """A file's relative folder ("" at the library's top)."""
    return key.rsplit("/", 1)[0] if "/" in key else ""
