"""soundseek: language-based audio retrieval (text-to-audio and audio-to-text).

Data flows one way through the sub-packages::

    data/ audio/        files -> waveforms, captions
    audio/features      waveforms -> log-mel
    encoders/           log-mel / tokens -> frames, tokens (+ on-disk feature cache)
    pooling/ scoring/   frames, tokens -> clip / caption vectors -> pair scores (global, TAP, GPA)
    losses/ ot/         scores -> training objectives
    metrics/            scores -> retrieval metrics
    index/ service/     embeddings -> search index -> CLI / HTTP / web page
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Index", "__version__"]


def __getattr__(name: str):
    if name == "Index":  # imported on first use: ``import soundseek`` stays light
        from .index.api import Index

        return Index
    raise AttributeError(f"module 'soundseek' has no attribute {name!r}")
