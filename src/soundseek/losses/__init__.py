"""Retrieval losses on score matrices (METHODS §6).

Every loss is an ``nn.Module`` called as ``loss(scores, clip_ids) -> scalar`` where
``scores[i, j] = score(caption i, clip j)`` (B, B) for a batch of B (caption, clip) pairs
(higher = better) and ``clip_ids`` (B,) says which clip each pair belongs to: captions of the
same clip are positives of each other's clips and never negatives. Learnable temperatures and
biases live in the loss module (give its parameters to the optimiser).

Registry ``LOSSES`` (names -> factories):

========================  ===========================================================
``triplet_sum``           :class:`TripletLoss` ``mode="sum"`` (VSE)
``triplet_max``           :class:`TripletLoss` ``mode="max"`` (VSE++)
``triplet_weighted``      :class:`TripletLoss` ``mode="weighted"`` (Mei et al.)
``ntxent``                :class:`NTXentLoss` (symmetric InfoNCE)
``sigmoid``               :class:`SigmoidLoss` (SigLIP)
``pmr``                   :class:`PMRLoss` (prior-matrix-revised, seed 002)
``mltm``                  :class:`MLTMLoss` (balanced entropic OT, seed 003)
``mltm_partial``          :class:`MLTMLoss` with ``mass=0.95`` by default (partial OT)
========================  ===========================================================

Example:
    >>> import torch
    >>> loss = build_loss("ntxent", temperature=0.05)
    >>> float(loss(torch.eye(4), torch.arange(4))) < 1e-3
    True
    >>> build_loss("ntxnet")
    Traceback (most recent call last):
    ...
    KeyError: "Invalid loss 'ntxnet'. Valid: mltm, mltm_partial, ntxent, pmr, sigmoid, triplet_max, triplet_sum, triplet_weighted"
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from soundseek.config import ConfigError
from soundseek.losses._common import positive_mask
from soundseek.losses.mltm import MLTMLoss
from soundseek.losses.ntxent import NTXentLoss
from soundseek.losses.pmr import PMRLoss
from soundseek.losses.sigmoid import SigmoidLoss
from soundseek.losses.triplet import TripletLoss
from soundseek.registry import Registry

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")


def _triplet(mode: str) -> Callable[..., TripletLoss]:
    def factory(margin: float = 0.2, bidirectional: bool = True) -> TripletLoss:
        return TripletLoss(margin=margin, mode=mode, bidirectional=bidirectional)

    factory.__name__ = f"triplet_{mode}"
    factory.__doc__ = f"TripletLoss(mode={mode!r}); see :class:`TripletLoss`."
    return factory


def _mltm_partial(reg: float = 0.05, ground: str = "euclidean", mass: float = 0.95,
                  n_iter: int = 100, tol: float = 1e-6, normalize_cost: bool = True,
                  warn: bool = True) -> MLTMLoss:
    """MLTMLoss with partial OT (``mass`` 0.95 by default); see :class:`MLTMLoss`."""
    return MLTMLoss(reg=reg, ground=ground, mass=mass, n_iter=n_iter, tol=tol,
                    normalize_cost=normalize_cost, warn=warn)


for _mode in ("sum", "max", "weighted"):
    LOSSES.add(f"triplet_{_mode}", _triplet(_mode))
LOSSES.add("ntxent", NTXentLoss)
LOSSES.add("sigmoid", SigmoidLoss)
LOSSES.add("pmr", PMRLoss)
LOSSES.add("mltm", MLTMLoss)
LOSSES.add("mltm_partial", _mltm_partial)


def loss_options(name: str) -> list[str]:
    """The option names ``build_loss(name, ...)`` accepts."""
    return LOSSES.options(name) or []


def build_loss(name: str, **options: Any) -> nn.Module:
    """Build the registered loss ``name`` with keyword ``options``.

    Raises:
        KeyError: unknown name (the message lists the registered losses).
        ConfigError: unknown option (the message lists the valid ones) or invalid value.
    """
    LOSSES.check_options(name, options)
    try:
        return LOSSES.get(name)(**options)
    except ValueError as e:
        raise ConfigError(f"loss {name!r}: {e}") from e


__all__ = ["LOSSES", "build_loss", "loss_options", "positive_mask", "TripletLoss", "NTXentLoss",
           "SigmoidLoss", "PMRLoss", "MLTMLoss"]
