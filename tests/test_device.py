"""One device per process: auto/cpu/cuda selection, autocast by device type, clear errors;
the CUDA tests (skipped without a GPU) check that a GPU run trains what a CPU run trains."""
from __future__ import annotations

import pytest
import torch

from soundseek.config import ConfigError
from soundseek.device import autocast, grad_scaler, select_device

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_auto_and_cpu():
    assert select_device("cpu") == torch.device("cpu")
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="Valid: auto, cpu, cuda"):
        select_device("gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_error(capsys):
    with pytest.raises(ConfigError, match="train.device=cuda but torch sees no CUDA device"):
        select_device("cuda")
    from soundseek.cli.main import main

    assert main(["train", "configs/default.yaml", "--set", "train.device=cuda", "--set", "data.path=nowhere"]) == 2
    assert "train.device=cuda but torch sees no CUDA device" in capsys.readouterr().err


def test_precision_follows_the_device_type():
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast(cpu, "fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ConfigError, match="fp16"):
        autocast(cpu, "fp16")
    assert not grad_scaler(cpu, "bf16").is_enabled()


def _fit(tmp_path, device: str, *sets: str):
    from test_train import toy_config, toy_prepared

    from soundseek.train.loop import Trainer

    cfg = toy_config(tmp_path / device, f"train.device={device}", "train.epochs=2", *sets)
    trainer = Trainer(cfg, toy_prepared())
    trainer.fit()
    return trainer


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("sets", [(), ("model.scorer=tap", "model.options={attn_dim: 16}", "loss.name=pmr", "loss.options={}")])
def test_cuda_training_equals_cpu_training_and_loads_on_cpu(tmp_path, sets):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    gpu = _fit(tmp_path, "cuda", *sets)
    cpu = _fit(tmp_path, "cpu", *sets)
    assert next(gpu.model.scorer.parameters()).device.type == "cuda"
    for k, v in cpu.model.state_dict().items():
        torch.testing.assert_close(gpu.model.state_dict()[k].cpu(), v, rtol=1e-3, atol=1e-4, msg=k)
    from soundseek.train.evaluate import evaluate
    from soundseek.train.loop import load_run
    from test_train import toy_prepared

    model, _, _ = load_run(tmp_path / "cuda" / "run" / "best.pt")  # a GPU checkpoint on the CPU
    assert next(model.parameters()).device.type == "cpu"
    data = toy_prepared()
    a, b = evaluate(model, data, "test"), evaluate(cpu.model, data, "test")
    assert a["t2a"]["R1"] == pytest.approx(b["t2a"]["R1"], abs=0.05)


@pytest.mark.cuda
@cuda
def test_cuda_bf16_and_fp16_steps_run_and_learn(tmp_path):
    for precision in ("bf16", "fp16"):
        t = _fit(tmp_path / precision, "cuda", f"train.precision={precision}")
        assert t.history[-1]["loss"] < t.history[0]["loss"] + 1e-6
        assert t.scaler.is_enabled() == (precision == "fp16")


@pytest.mark.cuda
@cuda
def test_cli_training_of_trained_towers_on_cuda_ends_with_the_test_table(tmp_path, capsys):
    """`soundseek train` with towers trained on the GPU reloads best.pt (saved on the CPU) beside
    the live towers for the final test table: every part must follow the training device."""
    import json

    import numpy as np
    import soundfile as sf
    from model_helpers import tiny_sets

    from soundseek.cli.main import main

    (tmp_path / "audio").mkdir()
    rows, g = [], np.random.default_rng(0)
    for i in range(24):
        sf.write(tmp_path / "audio" / f"tone{i}.wav", 0.3 * np.sin(np.arange(16000) * (0.02 + 0.01 * (i % 6)))
                 + 0.01 * g.standard_normal(16000), 32000)
        rows.append({"audio": f"audio/tone{i}.wav", "captions": [f"a dog barks {i % 6}"],
                     "split": ["train", "val", "test"][i % 3]})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    sets = tiny_sets(tmp_path) + [f"data.path={tmp_path / 'm.jsonl'}", "encoders.lock_audio=false",
                                  "encoders.lock_text=false", "train.device=cuda", "train.epochs=2",
                                  "train.batch_size=8", f"train.out_dir={tmp_path / 'run'}", "train.progress=false"]
    assert main(["train", "configs/default.yaml"] + [a for s in sets for a in ("--set", s)]) == 0
    assert "test split" in capsys.readouterr().out
