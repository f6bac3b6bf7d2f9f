"""Ensemble distillation term (Primus et al., DCASE 2024 Task 8 winner; METHODS §7).

The student's in-batch caption->clip and clip->caption distributions are pulled towards a
teacher ensemble's: with student logits ``Z = scores * t`` (its loss's live scale) and
teacher logits ``Y`` (the averaged ensemble logits of the same (caption, clip) pairs),

    L_kd = T^2 / 2 * ( CE(softmax_rows(Y / T), log_softmax_rows(Z / T))
                     + CE(softmax_cols(Y / T), log_softmax_cols(Z / T)) )

(Hinton et al.'s T^2 keeps gradient sizes comparable across temperatures), and the training
objective becomes ``(1 - weight) * L_gt + weight * L_kd``.

Shapes: student_logits, teacher_logits (B, B) -> scalar.

Example:
    >>> import torch
    >>> kd = DistillationLoss(weight=0.5, temperature=1.0)
    >>> y = torch.randn(4, 4)
    >>> bool(kd(y, y) <= kd(torch.zeros(4, 4), y))   # matching the teacher costs least
    True
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class DistillationLoss(nn.Module):
    """Soft-target cross-entropy of both retrieval directions (see the module docstring).

    Args:
        weight: share of the distillation term in the objective, in [0, 1].
        temperature: T, dividing both student and teacher logits.
    """

    def __init__(self, weight: float = 0.5, temperature: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"distillation weight must be in [0, 1], got {weight}")
        if not temperature > 0:
            raise ValueError(f"distillation temperature must be > 0, got {temperature}")
        self.weight, self.temperature = float(weight), float(temperature)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
            raise ValueError(f"student and teacher logits must be the same (B, B) shape, got "
                             f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
        t = self.temperature
        z, y = student_logits / t, teacher_logits.to(student_logits.dtype) / t
        rows = -(torch.softmax(y, 1) * torch.log_softmax(z, 1)).sum(1).mean()
        cols = -(torch.softmax(y, 0) * torch.log_softmax(z, 0)).sum(0).mean()
        return t * t * 0.5 * (rows + cols)

    def combine(self, loss: Tensor, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        """``(1 - weight) * loss + weight * L_kd``."""
        return (1 - self.weight) * loss + self.weight * self(student_logits, teacher_logits)
