"""Pooling of frame sequences into clip vectors (METHODS §4).

Registry ``POOLING`` (names: mean, max, meanmax, attention, netrvlad); every entry is an ``nn.Module``
class built as ``POOLING.get(name)(in_dim, **options)`` with attributes ``in_dim``/``out_dim``
and ``forward(frames (B, T, D), mask (B, T) bool | None) -> (B, out_dim)``. Text-aware
attention pooling (TAP) depends on the caption, so it lives in ``soundseek.scoring.tap``.
"""
from __future__ import annotations

from torch import nn

from ..registry import Registry
from .attention import AttentionPooling
from .basic import MaxPooling, MeanMaxPooling, MeanPooling, masked_max, masked_mean
from .netrvlad import NetRVLAD

POOLING: Registry[type[nn.Module]] = Registry("pooling")
POOLING.add("mean", MeanPooling)
POOLING.add("max", MaxPooling)
POOLING.add("meanmax", MeanMaxPooling)
POOLING.add("attention", AttentionPooling)
POOLING.add("netrvlad", NetRVLAD)


def build_pooling(name: str, in_dim: int, **options) -> nn.Module:
    """``POOLING.get(name)(in_dim, **options)``; KeyError lists the valid names."""
    return POOLING.get(name)(in_dim, **options)


__all__ = [
    "POOLING",
    "build_pooling",
    "MeanPooling",
    "MaxPooling",
    "MeanMaxPooling",
    "AttentionPooling",
    "NetRVLAD",
    "masked_mean",
    "masked_max",
]
