"""Shared helpers of the loss family: the positive mask and input checks (METHODS §6)."""
from __future__ import annotations

from torch import Tensor

from soundseek.registry import check_choice  # noqa: F401  (re-exported to the family)


def positive_mask(clip_ids: Tensor) -> Tensor:
    """Boolean positive mask ``P[i, j] = clip_ids[i] == clip_ids[j]`` (diagonal always True).

    Args:
        clip_ids: (B,) integer ids of the clip each (caption, clip) pair of the batch belongs to.

    Returns:
        (B, B) bool. Row i marks every clip column that is a positive for caption i
        (its own clip and the same clip appearing again in the batch), column j every caption
        that describes clip j. Same-clip pairs are never used as negatives.

    Example:
        >>> positive_mask(torch.tensor([4, 7, 4])).int()
        tensor([[1, 0, 1],
                [0, 1, 0],
                [1, 0, 1]], dtype=torch.int32)
    """
    return clip_ids[:, None] == clip_ids[None, :]  # (B, B)


def check_inputs(scores: Tensor, clip_ids: Tensor) -> None:
    """Raise ValueError unless scores is (B, B) floating and clip_ids is (B,)."""
    if scores.dim() != 2 or scores.shape[0] != scores.shape[1]:
        raise ValueError(f"scores must be a square (B, B) matrix, got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating tensor, got {scores.dtype}")
    if clip_ids.dim() != 1 or clip_ids.shape[0] != scores.shape[0]:
        raise ValueError(
            f"clip_ids must have shape ({scores.shape[0]},) to match scores, got {tuple(clip_ids.shape)}"
        )
    if scores.shape[0] == 0:
        raise ValueError("empty batch: scores has shape (0, 0)")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Raise ValueError unless ``value`` is a finite number > 0 (>= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    ok = v >= 0 if allow_zero else v > 0
    if not ok or v != v or v == float("inf"):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {value!r}")
