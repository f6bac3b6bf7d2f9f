"""Safe checkpoint loading shared by every encoder (METHODS §3, "Weights are loaded only
from local paths ... unknown/missing keys are reported").

* :func:`load_state_dict` reads ``.safetensors`` with safetensors and anything else with
  ``torch.load(weights_only=True)`` — a pickle that needs arbitrary globals is refused with
  :class:`CheckpointError` (never retried with ``weights_only=False``).
* :func:`strip_prefix` removes ``module.`` (DataParallel / DDP) and similar prefixes.
* :func:`diff_keys` / :func:`check_keys` report missing, unexpected and mis-shaped keys by
  name; :func:`load_into` loads a state dict into a module, strict by default (raises),
  ``strict=False`` warns and loads what matches.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe to unpickle, or does not fit the model."""


def load_object(path: str | Path, safe_globals: Sequence[Any] = ()) -> Any:
    """``torch.load(path, weights_only=True, map_location="cpu")`` with a scoped allow-list.

    Args:
        path: the checkpoint file.
        safe_globals: extra globals allowed *only for this call* (``torch.serialization.
            safe_globals`` context manager; entries may be objects or ``(obj, "module.name")``).
    Raises:
        CheckpointError: file missing, or the pickle needs globals outside the allow-list.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises pickle.UnpicklingError / RuntimeError
        msg = str(e).split("\n")
        detail = next((m.strip() for m in msg if "Unsupported global" in m), msg[0][:300])
        raise CheckpointError(
            f"Refusing to load {path}: it is not loadable with torch.load(weights_only=True) "
            f"({detail}). Only plain tensor checkpoints are accepted."
        ) from e


def load_state_dict(path: str | Path, key: str | None = None,
                    safe_globals: Sequence[Any] = ()) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (weights_only).

    Args:
        path: checkpoint file.
        key: when the torch file holds a dict of dicts (e.g. PANNs: ``{"model": sd, ...}``),
            the entry holding the state dict; ``None`` = the object itself is the state dict,
            or its ``"state_dict"``/``"model"`` entry if present.
    Returns:
        ``{name: tensor}`` on CPU.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"Checkpoint file not found: {path}")
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    obj = load_object(path, safe_globals)
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            top = ", ".join(map(str, obj)) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{path}: no entry {key!r} in the checkpoint (top level: {top})")
        obj = obj[key]
    elif isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        for k in ("state_dict", "model"):
            if k in obj and isinstance(obj[k], Mapping):
                obj = obj[k]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return dict(obj)


def strip_prefix(sd: Mapping[str, Any], prefixes: Iterable[str] = ("module.",)) -> dict[str, Any]:
    """Remove any of ``prefixes`` (repeatedly) from the start of every key."""
    prefixes = tuple(prefixes)
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if p and k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


@dataclass
class KeyDiff:
    """Result of comparing a checkpoint with a module's state dict."""

    missing: list[str] = field(default_factory=list)  # in the model, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the model
    mismatched: list[str] = field(default_factory=list)  # "name: file (a, b) vs model (c, d)"

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def report(self, limit: int = 20) -> str:
        parts = []
        for label, keys in (("missing", self.missing), ("unexpected", self.unexpected),
                            ("shape mismatch", self.mismatched)):
            if keys:
                more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
                parts.append(f"{label} keys ({len(keys)}): {', '.join(keys[:limit])}{more}")
        return "; ".join(parts) or "all keys match"


def diff_keys(sd: Mapping[str, torch.Tensor], model_sd: Mapping[str, torch.Tensor],
              ignore: Iterable[str] = ()) -> KeyDiff:
    """Compare names and shapes; keys in ``ignore`` (exact names) are left out of both sides."""
    ign = set(ignore)
    have = {k for k in sd if k not in ign}
    want = {k for k in model_sd if k not in ign}
    d = KeyDiff(sorted(want - have), sorted(have - want))
    for k in sorted(have & want):
        a, b = tuple(sd[k].shape), tuple(model_sd[k].shape)
        if a != b:
            d.mismatched.append(f"{k}: file {a} vs model {b}")
    return d


def load_into(module: nn.Module, sd: Mapping[str, torch.Tensor], strict: bool = True,
              ignore: Iterable[str] = (), source: str = "checkpoint") -> KeyDiff:
    """Load ``sd`` into ``module`` after a named key/shape check.

    Args:
        strict: raise :class:`CheckpointError` on any missing/unexpected/mis-shaped key;
            with ``False`` warn and load the keys that match.
        ignore: exact key names accepted in the file but not loaded (e.g. front-end buffers
            that the caller checks separately).
    """
    ign = set(ignore)
    d = diff_keys(sd, module.state_dict(), ign)
    if not d.ok:
        msg = f"{source} does not match {type(module).__name__}: {d.report()}"
        if strict:
            raise CheckpointError(msg + " (use strict=False to load the matching keys)")
        warnings.warn(msg, stacklevel=3)
    bad = {m.split(":")[0] for m in d.mismatched}
    usable = {k: v for k, v in sd.items() if k not in ign and k not in bad and k not in d.unexpected}
    module.load_state_dict(usable, strict=False)
    return d
