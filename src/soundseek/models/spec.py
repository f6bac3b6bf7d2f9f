"""Model specifications: where every command's ``--model`` is parsed.

A model argument is one of

* nothing / ``"default"`` — the small model shipped in the package;
* a soundseek checkpoint path (``runs/x/best.pt``);
* ``family:PATH`` — a pretrained model of a registered family from a local directory, e.g.
  ``hf-clap:models/clap-htsat-unfused`` (a Hugging Face ``ClapModel`` saved with
  ``save_pretrained``).

:func:`parse_model_spec` is the only parser; :data:`FAMILIES` maps a family name to a
:class:`Family` (the recipe of its model); ``soundseek.models.load`` — the entry point of every
command (index, search, serve, eval) and of ``Pipeline.load`` — builds it. A new family
registers itself here.
Nothing is ever downloaded: PATH must be an existing local directory.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from soundseek.encoders.clap import FAMILY as CLAP_FAMILY, HINT as CLAP_HINT
from soundseek.encoders.hf_load import require_local_dir
from soundseek.registry import Registry

__all__ = ["ModelSpec", "Family", "FAMILIES", "parse_model_spec", "require_local_dir", "family_config", "family_names"]

_SPEC = re.compile(r"^(?P<family>[a-z][a-z0-9_-]*):(?P<path>.+)$")


@dataclass(frozen=True)
class ModelSpec:
    family: str
    path: Path

    def __str__(self) -> str:
        return f"{self.family}:{self.path}"


@dataclass(frozen=True)
class Family:
    """How to build one family's model from a local directory.

    Attributes:
        config: ``path -> Config``: the recipe of the whole model — ``encoders`` names the
            family's towers (registered encoders taking the directory), ``model``/``loss`` its
            scorer and loss; ``soundseek.models.load`` builds it with ``create_model``. Its
            ``model.embed_dim`` is the width of both towers' outputs.
        hint: what the directory must contain (used in error messages).
    """

    config: Callable[[Path], Any]
    hint: str


FAMILIES: Registry = Registry("model family")


def parse_model_spec(spec: str | Path | None) -> ModelSpec | None:
    """``"family:PATH"`` -> ModelSpec; anything else (None, "default", a checkpoint path) -> None.

    Raises:
        KeyError: the prefix looks like a family (lower-case word before ``:``, no ``/`` in it)
            but no such family is registered; the message lists the valid ones.
    """
    if spec is None or isinstance(spec, Path):
        return None
    m = _SPEC.match(str(spec))
    if m is None or len(m.group("family")) == 1:  # "C:\\..." is a drive letter, not a family
        return None
    FAMILIES.get(m.group("family"))  # unknown family -> KeyError listing the valid ones
    return ModelSpec(m.group("family"), Path(m.group("path")).expanduser())


def family_config(spec: str) -> Any:
    """``family:PATH`` -> the recipe (``Config``) of that pretrained model in the local directory."""
    ms = parse_model_spec(spec)
    if ms is None:
        raise ValueError(f"{spec!r} is not a family:PATH model spec (families: {', '.join(family_names())})")
    fam: Family = FAMILIES.get(ms.family)
    return fam.config(require_local_dir(ms.path, ms.family, fam.hint))


def family_names() -> list[str]:
    return FAMILIES.names()


# -- built-in families (loaders imported lazily) -------------------------------------------------
def _clap_config(path: Path):
    from soundseek.models.clap import clap_config

    return clap_config(path)


FAMILIES.add(CLAP_FAMILY, Family(config=_clap_config, hint=CLAP_HINT))
