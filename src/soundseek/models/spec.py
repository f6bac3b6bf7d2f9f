"""Model specifications: where every command's ``--model`` is parsed.

A model argument is one of

* nothing / ``"default"`` — the small model shipped in the package;
* a soundseek checkpoint path (``runs/x/best.pt``);
* ``family:PATH`` — a pretrained model of a registered family from a local directory, e.g.
  ``hf-clap:models/clap-htsat-unfused`` (a Hugging Face ``ClapModel`` saved with
  ``save_pretrained``).

:func:`parse_model_spec` is the only parser; :data:`FAMILIES` maps a family name to a
:class:`Family` (how to build its retrieval model, config and search pipeline). A new family
registers itself here and every command (index, search, serve, eval, ``Pipeline.load``) takes it.
Nothing is ever downloaded: PATH must be an existing local directory.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from soundseek.registry import Registry

_SPEC = re.compile(r"^(?P<family>[a-z][a-z0-9_-]*):(?P<path>.+)$")


@dataclass(frozen=True)
class ModelSpec:
    family: str
    path: Path

    def __str__(self) -> str:
        return f"{self.family}:{self.path}"


@dataclass(frozen=True)
class Family:
    """How to build one family's pieces from a local directory.

    Attributes:
        retrieval: ``path -> (RetrievalModel, Config)``: the scoring model plus a config whose
            ``encoders`` section builds the family's audio/text encoders (for cached-feature eval).
        hint: what the directory must contain (used in error messages).
    """

    retrieval: Callable[[Path], tuple[Any, Any]]
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


def require_local_dir(path: str | Path, family: str, hint: str) -> Path:
    """The local directory of a pretrained model, or a FileNotFoundError saying where to put it.

    Hub ids (``laion/clap-htsat-unfused``) are never resolved: soundseek does not download.
    """
    p = Path(path).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        return p
    if p.is_dir():
        raise FileNotFoundError(f"{p} has no config.json: not a Hugging Face model directory ({hint})")
    looks_like_id = not p.is_absolute() and len(p.parts) == 2 and not str(path).startswith(".")
    where = (f"{path!r} looks like a Hugging Face hub id; soundseek never downloads. Download it yourself "
             f"(e.g. `huggingface-cli download {path} --local-dir models/{p.name}`) and pass "
             f"--model {family}:models/{p.name}" if looks_like_id else f"no directory {str(p)!r}")
    raise FileNotFoundError(f"{family}: {where}. The directory must hold {hint}.")


def resolve_retrieval(spec: str) -> tuple[Any, Any]:
    """``family:PATH`` -> (RetrievalModel, Config) built from the local directory."""
    ms = parse_model_spec(spec)
    if ms is None:
        raise ValueError(f"{spec!r} is not a family:PATH model spec (families: {', '.join(family_names())})")
    fam: Family = FAMILIES.get(ms.family)
    return fam.retrieval(require_local_dir(ms.path, ms.family, fam.hint))


def family_names() -> list[str]:
    return FAMILIES.names()


# -- built-in families (loaders imported lazily) -------------------------------------------------
def _clap_retrieval(path: Path):
    from soundseek.models.clap import clap_retrieval

    return clap_retrieval(path)


FAMILIES.add("hf-clap", Family(
    retrieval=_clap_retrieval,
    hint=("config.json, the weights (model.safetensors or pytorch_model.bin), preprocessor_config.json and "
          "the tokenizer files: the layout written by ClapModel.save_pretrained + ClapProcessor.save_pretrained")))
