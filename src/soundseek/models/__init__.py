"""Pretrained model families loaded from local directories (``--model family:PATH``).

``hf-clap``: a Hugging Face ``ClapModel`` directory (LAION-CLAP), see :mod:`soundseek.models.clap`.
The parser and registry live in :mod:`soundseek.models.spec`.
"""
from __future__ import annotations

from soundseek.models.spec import FAMILIES, Family, ModelSpec, parse_model_spec, resolve_retrieval


def _clap_retrieval(path):
    from soundseek.models.clap import clap_retrieval

    return clap_retrieval(path)


if "hf-clap" not in FAMILIES:
    from soundseek.models.clap import HINT as _CLAP_HINT

    FAMILIES.add("hf-clap", Family(retrieval=_clap_retrieval, hint=_CLAP_HINT))

__all__ = ["FAMILIES", "Family", "ModelSpec", "parse_model_spec", "resolve_retrieval"]
