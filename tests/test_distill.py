"""Ensemble distillation: the soft-target term against a plain reference, and a student that
trains towards its teachers' logits."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from soundseek.losses.distill import DistillationLoss


def reference(z, y, t):
    """Loop over rows and columns: T^2/2 (sum_i CE(p_i, q_i)/B + sum_j CE(p_j, q_j)/B)."""
    b = z.shape[0]
    rows = sum(-(torch.softmax(y[i] / t, 0) * torch.log_softmax(z[i] / t, 0)).sum() for i in range(b)) / b
    cols = sum(-(torch.softmax(y[:, j] / t, 0) * torch.log_softmax(z[:, j] / t, 0)).sum() for j in range(b)) / b
    return t * t * (rows + cols) / 2


@pytest.mark.parametrize("t", [0.5, 1.0, 3.0])
def test_matches_the_loop_reference_and_is_stationary_at_the_teacher(t):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(5, 5, generator=g, dtype=torch.float64)
    kd = DistillationLoss(weight=0.3, temperature=t)
    torch.testing.assert_close(kd(z, y), reference(z, y, t))
    at = y.clone().requires_grad_(True)
    kd(at, y).backward()
    assert at.grad.abs().max() < 1e-12  # the student that equals its teachers gets no push
    loss = torch.tensor(2.0, dtype=torch.float64)
    torch.testing.assert_close(kd.combine(loss, z, y), 0.7 * loss + 0.3 * kd(z, y))
    with pytest.raises(ValueError, match="weight"):
        DistillationLoss(weight=1.5)
    with pytest.raises(ValueError, match="same"):
        kd(z, y[:3])


def test_student_trains_towards_the_teachers(tmp_path):
    from test_train import toy_config, toy_prepared

    from soundseek.fileio import atomic_write_bytes
    from soundseek.train.distill import FORMAT, caption_keys
    from soundseek.train.evaluate import score_view
    from soundseek.train.loop import Trainer

    data = toy_prepared()
    teacher = Trainer(toy_config(tmp_path / "teacher", "train.epochs=6", "model.embed_dim=16"), data)
    teacher.fit()
    view = data.view("train")
    logits = score_view(teacher.model, data, view) * teacher.model.logit_scale()
    payload = {"format": FORMAT, "split": "train", "teachers": ["t"], "clips": [c.id for c in view.clips],
               "captions": [[c, k] for c, k in caption_keys(view)], "logits": logits.float()}
    atomic_write_bytes(tmp_path / "targets.pt", lambda f: torch.save(payload, f))
    student = Trainer(toy_config(tmp_path / "student", "train.epochs=6", f"loss.distill={tmp_path / 'targets.pt'}",
                                 "loss.distill_weight=1.0", "model.embed_dim=16", "train.seed=3"), data)
    assert student.model.distill is not None

    def gap() -> float:
        with torch.no_grad():
            s = score_view(student.model, data, view) * student.model.logit_scale()
        return float(DistillationLoss(1.0)(s, logits))

    before = gap()
    student.fit()
    assert gap() < 0.8 * before, (before, gap())
    with pytest.raises(ValueError, match="no teacher targets"):
        bad = dict(payload, clips=payload["clips"][1:], logits=logits[:, 1:].float())
        atomic_write_bytes(tmp_path / "bad.pt", lambda f: torch.save(bad, f))
        Trainer(toy_config(tmp_path / "x", f"loss.distill={tmp_path / 'bad.pt'}"), data)
    np.testing.assert_array_equal(student.targets.row, np.arange(view.n_captions))
