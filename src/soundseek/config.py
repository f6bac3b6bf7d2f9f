"""Typed configuration: YAML/dicts -> nested dataclasses that reject unknown keys.

Example (see ``tests/test_config.py``)::

    @dataclass
    class Opt:
        lr: float = 1e-4

    @dataclass
    class Cfg:
        opt: Opt = field(default_factory=Opt)

    from_dict(Cfg, {"opt": {"lr": 0.1}}).opt.lr        # 0.1
    apply_overrides(cfg, ["opt.lr=3e-4"])               # re-validated copy
    from_dict(Cfg, {"opt": {"l_r": 1}})
    # ConfigError: Unknown key 'opt.l_r'. Valid keys of opt: lr
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message says which and what is valid."""


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {value!r} matches none of {tp}: {'; '.join(errors)}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"Invalid value {value!r} for {where}. Valid: {', '.join(map(str, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        out = [_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return out if origin is list else tuple(out)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError`."""
    data = dict(data or {})
    hints = get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in names]
    if unknown:
        full = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(
            f"Unknown key {full!r}. Valid keys of {where or cls.__name__}: {', '.join(names)}"
        )
    kwargs = {k: _convert(hints[k], v, f"{where}.{k}" if where else k) for k, v in data.items()}
    obj = cls(**kwargs)
    post = getattr(obj, "validate", None)
    if callable(post):
        post()
    return obj


def to_dict(obj: Any) -> Any:
    """Dataclass -> plain dict (for YAML/JSON and hashing)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_yaml(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
    """Load a YAML recipe; ``_base_: other.yaml`` (relative to the file) is merged underneath."""
    return apply_overrides(from_dict(cls, _read_yaml(Path(path), ())), overrides or [])


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    if path.resolve() in seen:
        raise ConfigError(f"Cyclic _base_ chain at {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    base = data.pop("_base_", None)
    if base is None:
        return data
    bases = [base] if isinstance(base, str) else list(base)
    merged: dict[str, Any] = {}
    for b in bases:
        merged = _merge(merged, _read_yaml(path.parent / b, seen + (path.resolve(),)))
    return _merge(merged, data)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        # "*options" dicts are constructor kwargs of the component the recipe names: replaced
        # whole, since a base recipe's options need not fit a different scorer or loss
        mergeable = isinstance(v, dict) and isinstance(out.get(k), dict) and not k.endswith("options")
        out[k] = _merge(out[k], v) if mergeable else v
    return out


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Apply ``a.b.c=value`` strings (value parsed as YAML) and re-validate the whole config."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else ""
        node = data
        parts = key.strip().split(".")
        for i, p in enumerate(parts[:-1]):
            if not isinstance(node, dict) or p not in node:
                raise ConfigError(f"Unknown key {'.'.join(parts[: i + 1])!r} in override {item!r}")
            node = node[p]
        if not isinstance(node, dict) or parts[-1] not in node:
            valid = ", ".join(node) if isinstance(node, dict) else ""
            raise ConfigError(f"Unknown key {key!r} in override {item!r}. Valid: {valid}")
        node[parts[-1]] = value
    return from_dict(type(cfg), data)  # type: ignore[arg-type]
