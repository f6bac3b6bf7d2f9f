"""Whole retrieval models: the dual encoder (:class:`RetrievalModel`), its recipe
(:class:`Config`) and the factory (:func:`create_model`, :func:`load_model`, :func:`load`).

Pretrained families from local directories (``family:PATH`` specs, e.g. ``hf-clap:DIR``):
the parser and registry in :mod:`soundseek.models.spec`, CLAP's recipe in :mod:`soundseek.models.clap` (its towers: :mod:`soundseek.encoders.clap`),
original LAION-CLAP checkpoints in :mod:`soundseek.models.laion_clap`."""
from soundseek.models.config import Config
from soundseek.models.factory import DEFAULT_CHECKPOINT, build_towers, create_model, load, load_model
from soundseek.models.retrieval import RetrievalModel

__all__ = ["Config", "RetrievalModel", "DEFAULT_CHECKPOINT", "build_towers", "create_model", "load", "load_model"]
