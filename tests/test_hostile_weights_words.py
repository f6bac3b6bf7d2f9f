"""A hostile ``pytorch_model.bin`` is refused in words that do not repeat torch's advice to
reload it with ``weights_only=False`` (which would run its code)."""
from __future__ import annotations

import os

import pytest

from soundseek.encoders.hf_load import HFLoadError, stored_shapes


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo owned > /dev/null",))


def test_hostile_bin_refused_without_weights_only_false_advice(tmp_path):
    import torch

    torch.save({"w": _Evil()}, tmp_path / "pytorch_model.bin")  # a zip checkpoint whose pickle calls os.system
    with pytest.raises(HFLoadError) as e:
        stored_shapes(tmp_path)
    msg = str(e.value)
    assert "refused" in msg and "\n" not in msg
    assert "weights_only=False" not in msg and "weights_only` set to `False" not in msg and "trust" not in msg
