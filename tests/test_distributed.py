"""Issue 5: N gloo processes train exactly what one process trains on the concatenated batch.

Every test spawns 2 processes on 127.0.0.1 (gloo, 1 thread each) and compares, in float64,
against a single-process reference computed in this process: the loss and every parameter
gradient of one Trainer step for each loss x scorer, whole Trainer runs (final weights,
metrics, rank-0-only checkpoints and logs) and resuming across world sizes.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from soundseek import distributed as dist
from soundseek.config import apply_overrides
from soundseek.train.config import Config
from soundseek.train.data import Prepared

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_train import toy_prepared  # noqa: E402

pytestmark = pytest.mark.distributed
WORLD = 2
TIMEOUT = 120.0

# (scorer sets, loss name, loss options): every registered loss, global + TAP + GPA scorers
SCORERS = {
    "global": ["model.scorer=global", "model.options={pooling: meanmax}"],
    "tap": ["model.scorer=tap", "model.options={attn_dim: 16}"],
    "gpa": ["model.scorer=gpa", "model.options={n_prototypes: 2, text_pooling: mean}"],
}
LOSS_OPTIONS = {
    "ntxent": "{temperature: 0.1, learnable: true}",
    "sigmoid": "{}",
    "pmr": "{temperature: 0.1}",
    "triplet_sum": "{}",
    "triplet_max": "{}",
    "triplet_weighted": "{}",
    "mltm": "{warn: false}",
    "mltm_partial": "{warn: false}",
}
CASES = [(s, l) for l in LOSS_OPTIONS for s in ("global", "tap")] + [("gpa", "ntxent"), ("gpa", "mltm")]
EXTRA_CASES = {  # m-LTM recipe: Mahalanobis ground metric + nuclear-norm regulariser
    "mahalanobis": ["model.scorer=global", "model.options={similarity: mahalanobis}", "model.nuclear_norm=0.01",
                    "loss.name=mltm", "loss.options={warn: false}"],
}
# caption positions of the global batch: 11 rows (6 on rank 0, 5 on rank 1); toy captions
# 3k..3k+2 belong to clip k, so clips 0-4 have captions on both ranks (cross-process positives)
ROWS = np.array([0, 3, 6, 9, 12, 1, 4, 7, 10, 13, 2])


# -- helpers ------------------------------------------------------------------------------
class F64Store:
    """Wrap a feature store so batches come out in float64."""

    def __init__(self, store) -> None:
        self.store = store

    def batch(self, idx):
        return tuple(t.double() if t.is_floating_point() else t for t in self.store.batch(idx))


def f64_prepared() -> Prepared:
    p = toy_prepared()
    return Prepared(p.corpus, F64Store(p.audio), F64Store(p.text), p.audio_dim, p.text_dim, p.splits)


def case_sets(scorer: str, loss: str) -> list[str]:
    if scorer in EXTRA_CASES:
        return EXTRA_CASES[scorer]
    return SCORERS[scorer] + [f"loss.name={loss}", f"loss.options={LOSS_OPTIONS[loss]}"]


def make_config(out: Path, *sets: str) -> Config:
    return apply_overrides(Config(), [
        f"train.out_dir={out}", "train.epochs=2", "train.batch_size=16", "train.progress=false",
        "train.tensorboard=false", "model.embed_dim=16", "optim.lr=3e-3", "optim.grad_clip=0", *sets,
    ])


def one_step(cfg: Config, rows: np.ndarray) -> dict:
    """Loss and gradients of one Trainer step (in this process's world)."""
    from soundseek.train.loop import Trainer

    trainer = Trainer(cfg, f64_prepared())
    loss = trainer.train_step(rows)
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    return {"loss": loss, "grads": grads}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, fn, args) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    assert dist.init_from_env("gloo")
    try:
        fn(*args)
    finally:
        torch.distributed.destroy_process_group()


def spawn(fn, *args, world: int = WORLD) -> None:
    """Run ``fn(*args)`` on ``world`` gloo processes; fail on error or after TIMEOUT seconds."""
    ctx = mp.start_processes(_entry, args=(world, free_port(), fn, args), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.time() + TIMEOUT
    while not ctx.join(timeout=max(0.1, deadline - time.time())):
        if time.time() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"distributed workers did not finish within {TIMEOUT} s")


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


# -- workers (run in the spawned processes) ---------------------------------------------
def _steps_worker(out: str, cases: list) -> None:
    results = {}
    for scorer, loss in cases:
        results[f"{scorer}/{loss}"] = one_step(make_config(Path(out) / "unused", *case_sets(scorer, loss)), ROWS)
    torch.save(results, Path(out) / f"steps-rank{dist.rank()}.pt")


def _fit_worker(out: str) -> None:
    from soundseek.train import loop

    calls = []
    save = loop.save_checkpoint
    log = loop.Trainer._log
    loop.save_checkpoint = lambda path, payload: (calls.append(Path(path).name), save(path, payload))[1]
    loop.Trainer._log = lambda self, record, writer: (calls.append("log"), log(self, record, writer))[1]
    root = Path(out)
    data = f64_prepared()
    full = loop.Trainer(make_config(root / "full2", "model.scorer=global"), data)
    full.fit()
    part = loop.Trainer(make_config(root / "part2", "model.scorer=global"), data)
    part.cfg.train.epochs = 1  # a run killed after epoch 1 (same config hash as the 2-epoch run)
    part.fit()
    # resume, with 2 processes, a checkpoint written by 1 process
    resumed = loop.Trainer(make_config(root / "part1", "model.scorer=global"), data)
    resumed.fit()
    (root / f"calls-rank{dist.rank()}.json").write_text(json.dumps(calls))
    if dist.is_main():
        torch.save({"full2": full.model.state_dict(), "resumed2": resumed.model.state_dict(),
                    "history": full.history}, root / "fit.pt")


def finetune_prepared(root: str) -> Prepared:
    """Toy features for the audio side (cached) and a tiny BERT text tower trained live on
    captions made of its vocabulary."""
    from dataclasses import replace

    from model_helpers import WORDS, tiny_bert_dir

    from soundseek.encoders import build_audio_encoder, build_text_encoder

    p = f64_prepared()
    g = np.random.default_rng(0)
    words = WORDS[5:]
    splits = {}
    for name, v in p.splits.items():
        caps = [" ".join(g.choice(words, size=int(g.integers(2, 5)))) for _ in range(v.n_captions)]
        splits[name] = replace(v, captions=caps)
    torch.manual_seed(0)
    audio = build_audio_encoder("small_cnn", channels=2, n_blocks=1, out_dim=p.audio_dim)
    text = build_text_encoder("hf", path=str(tiny_bert_dir(Path(root), hidden=p.text_dim)), max_length=8)
    return replace(p, text=None, splits=splits, towers=(audio.double(), text.double()))


FINETUNE_SETS = ["encoders.lock_text=false", "model.options={pooling: meanmax, text_pooling: mean}"]


def finetune_steps(root: str, out: Path) -> dict:
    """Loss and gradients of two Trainer steps with a trained text tower."""
    from soundseek.train.loop import Trainer

    trainer = Trainer(make_config(out, *FINETUNE_SETS), finetune_prepared(root))
    res = {}
    for step, rows in enumerate((ROWS, ROWS[::-1])):
        loss = trainer.train_step(rows)
        res[step] = {"loss": loss, "grads": {n: p.grad.clone() for n, p in trainer.model.named_parameters()
                                             if p.grad is not None}}
    return res


def _finetune_worker(out: str) -> None:
    torch.save(finetune_steps(out, Path(out) / "unused"), Path(out) / f"finetune-rank{dist.rank()}.pt")


# -- tests --------------------------------------------------------------------------------
def assert_same(a: dict, b: dict, what: str, rtol: float = 1e-10, atol: float = 1e-12) -> None:
    assert abs(a["loss"] - b["loss"]) <= atol + rtol * abs(b["loss"]), (what, a["loss"], b["loss"])
    assert set(a["grads"]) == set(b["grads"]), (what, set(a["grads"]) ^ set(b["grads"]))
    for k in b["grads"]:
        torch.testing.assert_close(a["grads"][k], b["grads"][k], rtol=rtol, atol=atol, msg=f"{what}: grad of {k}")


@pytest.fixture(scope="module")
def two_process_steps(tmp_path_factory):
    out = tmp_path_factory.mktemp("steps")
    spawn(_steps_worker, str(out), CASES + [("mahalanobis", "")])
    ranks = [torch.load(out / f"steps-rank{r}.pt", weights_only=True) for r in range(WORLD)]
    return ranks


@pytest.mark.parametrize("scorer,loss", CASES + [("mahalanobis", "")])
def test_two_process_step_equals_one_process_on_concatenated_batch(two_process_steps, float64, tmp_path, scorer, loss):
    ref = one_step(make_config(tmp_path, *case_sets(scorer, loss)), ROWS)
    assert ref["grads"] and all(bool(g.abs().sum() > 0) for n, g in ref["grads"].items() if "audio_head" in n)
    for r, res in enumerate(two_process_steps):  # both ranks hold the global loss and averaged gradients
        assert_same(res[f"{scorer}/{loss}"], ref, f"{scorer}/{loss} rank {r}")


def test_equivalence_check_detects_missing_cross_process_negatives(two_process_steps, float64, tmp_path):
    """Without the gather, each rank's loss sees only its half: the comparison must fail."""
    cfg = make_config(tmp_path, *case_sets("global", "ntxent"))
    half = one_step(cfg, ROWS[:6])
    with pytest.raises(AssertionError):
        assert_same(two_process_steps[0]["global/ntxent"], half, "half batch")


def test_trainer_two_processes_match_one_process_and_resume_across_world_sizes(tmp_path, float64):
    from soundseek.train.checkpoint import load_checkpoint
    from soundseek.train.loop import Trainer

    data = f64_prepared()
    sets = ("model.scorer=global",)
    part1 = Trainer(make_config(tmp_path / "part1", *sets), data)
    part1.cfg.train.epochs = 1
    part1.fit()
    spawn(_fit_worker, str(tmp_path))
    got = torch.load(tmp_path / "fit.pt", weights_only=True)
    ref = Trainer(make_config(tmp_path / "full1", *sets), data)
    ref.fit()
    ref_state = ref.model.state_dict()
    # same final weights and validation metrics as one process with the same global batch
    for k, v in ref_state.items():
        torch.testing.assert_close(got["full2"][k], v, rtol=1e-9, atol=1e-11, msg=k)
        torch.testing.assert_close(got["resumed2"][k], v, rtol=1e-9, atol=1e-11, msg=k)
    assert [h["monitor"] for h in got["history"]] == pytest.approx([h["monitor"] for h in ref.history], rel=1e-9)
    # rank 0 alone writes checkpoints and logs; one metrics line per epoch
    calls = [json.loads((tmp_path / f"calls-rank{r}.json").read_text()) for r in range(WORLD)]
    assert calls[1] == [] and calls[0].count("last.pt") == 2 + 1 + 1 and calls[0].count("log") == 4
    lines = (tmp_path / "full2" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2]
    assert load_checkpoint(tmp_path / "full2" / "last.pt")["epoch"] == 2
    # a checkpoint written by the 2-process run resumes in 1 process to the same result
    resumed1 = Trainer(make_config(tmp_path / "part2", *sets), data)
    assert load_checkpoint(tmp_path / "part2" / "last.pt")["epoch"] == 1
    resumed1.fit()
    for k, v in ref_state.items():
        torch.testing.assert_close(resumed1.model.state_dict()[k], v, rtol=1e-9, atol=1e-11, msg=k)


def test_helpers_are_no_ops_without_a_process_group():
    x = torch.randn(3, 4, requires_grad=True)
    assert dist.world_size() == 1 and dist.rank() == 0 and dist.is_main()
    assert dist.gather_with_grad(x) is x and dist.broadcast_object({"a": 1}) == {"a": 1}
    assert dist.all_gather_object(5) == [5]
    assert not dist.init_from_env() if int(os.environ.get("WORLD_SIZE", "1")) <= 1 else True
    m = torch.ones(3, 4, dtype=torch.bool)
    assert dist.pad_to_global(x, m)[0] is x
    with pytest.raises(ValueError, match="Valid: gloo, nccl"):
        os.environ["WORLD_SIZE"] = "2"
        try:
            dist.init_from_env("mpi")
        finally:
            del os.environ["WORLD_SIZE"]


def test_two_process_fine_tuning_of_a_tower_equals_one_process(tmp_path, float64):
    """A trained text tower (tiny BERT, live captions): the same loss and gradients, the
    tower's included, over two steps (DistributedDataParallel with an unused BERT pooler)."""
    from model_helpers import tiny_bert_dir

    tiny_bert_dir(tmp_path, hidden=16)  # written once, read by every process
    spawn(_finetune_worker, str(tmp_path))
    ref = finetune_steps(str(tmp_path), tmp_path / "ref")
    assert any(k.startswith("text_encoder.model.encoder.layer.1") for k in ref[0]["grads"])
    for r in range(WORLD):
        got = torch.load(tmp_path / f"finetune-rank{r}.pt", weights_only=True)
        for step in (0, 1):
            assert_same(got[step], ref[step], f"fine-tuned tower, rank {r}, step {step}", rtol=1e-9, atol=1e-11)
