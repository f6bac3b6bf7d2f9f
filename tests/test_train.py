"""Training loop on in-memory features: learning happens, resume is exact, checkpoints are safe."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from soundseek.config import ConfigError, apply_overrides
from soundseek.data.types import Clip, Corpus
from soundseek.train.checkpoint import load_checkpoint
from soundseek.train.config import Config
from soundseek.train.data import Prepared, SplitView
from soundseek.train.evaluate import evaluate, random_baseline
from soundseek.train.loop import Trainer, load_run
from soundseek.train.memory import ArrayAudioStore, ArrayTextStore

DA, DT = 24, 16


def toy_prepared(n_clips=90, caps=3, seed=0, n_classes=30) -> Prepared:
    """Clips drawn around latent 'sound classes'; captions see a noisy linear view of the class."""
    g = np.random.default_rng(seed)
    centres_a = g.standard_normal((n_classes, DA))
    mix = g.standard_normal((DA, DT))
    frames, tokens, sent, clips = [], [], [], []
    for i in range(n_clips):
        c = i % n_classes
        t = int(g.integers(3, 9))
        frames.append(centres_a[c] + 0.8 * g.standard_normal((t, DA)))
        split = "train" if i < 54 else ("val" if i < 72 else "test")
        clips.append(Clip(id=f"c{i}", audio=__import__("pathlib").Path(f"c{i}.wav"), captions=[f"cap {i} {k}" for k in range(caps)], split=split))
        for _ in range(caps):
            L = int(g.integers(2, 7))
            tok = centres_a[c] @ mix + 1.0 * g.standard_normal((L, DT))
            tokens.append(tok)
            sent.append(tok.mean(0))
    corpus = Corpus("toy", clips)
    views = {}
    for name in ("train", "val", "test"):
        rows = [i for i, c in enumerate(clips) if c.split == name]
        cap_rows = [i * caps + k for i in rows for k in range(caps)]
        owner = [p for p in range(len(rows)) for _ in range(caps)]
        views[name] = SplitView(name, np.array(rows), np.array(cap_rows), np.array(owner),
                                [clips[i] for i in rows], [f"cap {i} {k}" for i in rows for k in range(caps)])
    return Prepared(corpus, ArrayAudioStore(frames), ArrayTextStore(tokens, np.stack(sent)), DA, DT, views)


def toy_config(tmp_path, *sets: str) -> Config:
    return apply_overrides(Config(), [
        f"train.out_dir={tmp_path / 'run'}", "train.epochs=4", "train.batch_size=16", "train.progress=false",
        "train.tensorboard=false", "model.embed_dim=32", "optim.lr=3e-3", *sets,
    ])


def test_training_beats_random_and_writes_checkpoints(tmp_path):
    data = toy_prepared()
    cfg = toy_config(tmp_path, "train.epochs=8")
    result = Trainer(cfg, data).fit()
    out = tmp_path / "run"
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file() and (out / "config.yaml").is_file()
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == list(range(1, 9))
    assert lines[-1]["loss"] < lines[0]["loss"]
    model, cfg2, _ = load_run(out / "best.pt")
    m = evaluate(model, data, "test")
    rnd = random_baseline(data.view("test"))
    assert m["t2a"]["R1"] > rnd["t2a"]["R1"] + 0.3 and m["a2t"]["mAP10"] > rnd["a2t"]["mAP10"] + 0.3, (m, rnd)
    assert result["best"] == pytest.approx(max(l["monitor"] for l in lines))


@pytest.mark.parametrize("sets", [(), ("model.scorer=tap", "model.options={attn_dim: 16}", "loss.name=pmr", "loss.options={}")])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, sets):
    data = toy_prepared()
    full = Trainer(toy_config(tmp_path / "a", *sets), data)
    full.fit()
    # interrupted after 2 of 4 epochs, then resumed by a fresh trainer (a new process)
    part = Trainer(toy_config(tmp_path / "b", "train.epochs=2", *sets), data)
    part.fit()
    ckpt = load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert ckpt["epoch"] == 2
    # same recipe with 4 epochs must not reuse a 2-epoch schedule silently: it is a different config
    with pytest.raises(ConfigError, match="different configuration"):
        Trainer(toy_config(tmp_path / "b", *sets), data).fit()
    # an interruption inside the 4-epoch run: keep its epoch-2 checkpoint, drop later ones
    _train_epochs(Trainer(toy_config(tmp_path / "c", *sets), data), 2)
    resumed = Trainer(toy_config(tmp_path / "c", *sets), data)
    resumed.fit()
    a = full.model.state_dict()
    b = resumed.model.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert full.history[-1]["loss"] == resumed.history[-1]["loss"]


def _train_epochs(trainer: Trainer, n: int) -> None:
    """Run the first n epochs of a longer run, as a run killed after epoch n would have."""
    total = trainer.cfg.train.epochs
    trainer.cfg.train.epochs = n
    trainer.fit()
    trainer.cfg.train.epochs = total


def test_checkpoint_loading_refuses_code_and_garbage(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"format": "soundseek-checkpoint", "x": Evil()}))
    with pytest.raises(ValueError, match="could run code, so soundseek refuses it") as e:
        load_checkpoint(bad)
    assert "weights_only" not in str(e.value)  # soundseek's message, never torch's advice to unsafe-load
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="is not a soundseek checkpoint") as e:
        load_checkpoint(tmp_path / "junk.pt")
    assert "weights_only" not in str(e.value)
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="no format tag"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_model_options_list_valid_ones(tmp_path):
    data = toy_prepared()
    with pytest.raises(ConfigError, match="Unknown key model.options.'poolin'"):
        Trainer(toy_config(tmp_path, "model.options={poolin: mean}"), data)
    with pytest.raises(KeyError, match="Valid:"):
        Trainer(toy_config(tmp_path, "loss.name=ntxnet"), data)
    with pytest.raises(ConfigError, match="lr group"):
        Trainer(toy_config(tmp_path, "optim.lr_groups={encoder: 0.1}"), data)


def test_positives_by_label_groups_clips_whose_first_captions_match(tmp_path):
    """Multi-positive targets: equal labels (case/spacing ignored) share a loss id, others do not."""
    from soundseek.train.loop import positive_ids

    data = toy_prepared()
    view = data.view("train")
    for j, clip in enumerate(view.clips):  # three labels over the 54 train clips, mixed spellings
        clip.captions = [["Dog bark", "dog  BARK", "rain"][j % 3] + (" " if j % 2 else ""), "extra"]
    ids = positive_ids(view, "label")
    label = np.arange(view.n_clips) % 3
    label[label == 1] = 0  # "dog  BARK" == "Dog bark"
    same = ids[:, None] == ids[None, :]
    assert (same == (label[:, None] == label[None, :])).all()
    assert (positive_ids(view, "clip") == np.arange(view.n_clips)).all()
    # the trainer hands those ids to the loss, so same-label pairs are never negatives
    trainer = Trainer(toy_config(tmp_path, "train.positives_by=label"), data)
    rows = np.arange(12)
    batch = trainer._batch(rows, None)
    assert torch.equal(batch["clip_ids"], torch.as_tensor(ids[view.caption_audio[rows]]))
    assert len(set(batch["clip_ids"].tolist())) == 2
    with pytest.raises(ConfigError, match="clip, label|label"):
        Trainer(toy_config(tmp_path, "train.positives_by=caption"), data)


def test_a_step_skipped_by_the_grad_scaler_does_not_advance_the_schedule(tmp_path):
    """fp16 loss scaling: an overflowing step changes nothing, the lr schedule waits, no warning."""
    import warnings

    data = toy_prepared()
    trainer = Trainer(toy_config(tmp_path), data)
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 127)  # scaled loss overflows: inf grads
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    epoch = trainer.sched.last_epoch
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when the scheduler steps before the optimiser
        trainer.train_step(np.arange(16))
    assert trainer.sched.last_epoch == epoch and trainer.scaler.get_scale() < 2.0 ** 127
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1.0)  # a normal step advances both
    trainer.train_step(np.arange(16))
    assert trainer.sched.last_epoch == epoch + 1


@pytest.mark.parametrize("sets", [
    ("model.options={pooling: meanmax, dropout: 0.3}",),  # dropout: pass 2 must replay pass 1's masks
    ("model.scorer=tap", "model.options={attn_dim: 16}", "loss.name=pmr", "loss.options={}"),  # frame-level reps
    ("loss.name=sigmoid", "loss.options={}", "train.positives_by=label"),  # learnable loss parameters
])
def test_grad_cache_gives_the_gradients_of_the_whole_batch(tmp_path, sets):
    """GradCache against the obvious reference: the micro-batches encoded with gradients, in the
    same order and random state, concatenated, and one loss over the whole batch."""
    from soundseek.train.step import concat_reps

    data = toy_prepared()
    trainer = Trainer(toy_config(tmp_path, "train.accumulate=4", "train.grad_cache=true", *sets), data)
    trainer.model.train()
    rows = np.random.default_rng(0).permutation(trainer.train_view.n_captions)[:16]
    micro = np.array_split(rows, 4)
    params = [p for p in trainer.model.parameters() if p.requires_grad]

    torch.manual_seed(123)
    batches = [trainer._batch(m, None) for m in micro]
    reps = [trainer.step_module.encode(b) for b in batches]
    loss = trainer.model(concat_reps([r[0] for r in reps]), concat_reps([r[1] for r in reps]),
                         torch.cat([b["clip_ids"] for b in batches]))
    want = torch.autograd.grad(loss, params, allow_unused=True)

    trainer.opt.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    got_loss = trainer._grad_cache_backward(micro)
    assert got_loss == pytest.approx(float(loss.detach()), rel=1e-6)
    for p, w in zip(params, want):
        if w is None:
            assert p.grad is None or not p.grad.any()
        else:
            torch.testing.assert_close(p.grad, w, rtol=1e-5, atol=1e-7)


def test_grad_cache_without_dropout_equals_one_full_batch_step(tmp_path):
    """Without randomness in the heads, accumulate=4 + grad_cache takes exactly the step of one
    batch of 16 (plain accumulation does not: each micro-batch has only its own negatives)."""
    data = toy_prepared()
    rows = np.arange(16)
    states = {}
    for name, sets in (("full", ()), ("cached", ("train.accumulate=4", "train.grad_cache=true")),
                       ("plain", ("train.accumulate=4",))):
        torch.manual_seed(0)
        trainer = Trainer(toy_config(tmp_path / name, *sets), data)
        trainer.train_step(rows)
        states[name] = trainer.model.state_dict()
    for k, v in states["full"].items():
        torch.testing.assert_close(states["cached"][k], v, rtol=1e-5, atol=1e-6)
    assert any(not torch.allclose(states["plain"][k], v, atol=1e-6) for k, v in states["full"].items())
    with pytest.raises(ConfigError, match="grad_cache needs train.accumulate >= 2"):
        toy_config(tmp_path, "train.grad_cache=true").validate()


def test_init_from_starts_from_a_checkpoints_weights(tmp_path):
    data = toy_prepared()
    Trainer(toy_config(tmp_path / "a", "train.epochs=2"), data).fit()
    src = tmp_path / "a" / "run" / "best.pt"
    saved = load_checkpoint(src)["model"]
    t = Trainer(toy_config(tmp_path / "b", f"train.init_from={src}", "train.seed=7"), data)
    own = t.model.state_dict()
    assert saved and all(torch.equal(own[k], v) for k, v in saved.items())
    fresh = Trainer(toy_config(tmp_path / "c", "train.seed=7"), data).model.state_dict()
    assert not all(torch.equal(fresh[k], v) for k, v in saved.items())
    t.fit()  # and trains on from there
    assert len(t.history) == 4
    with pytest.raises(ConfigError, match="init_from=.*scorer.audio_head.fc1.weight is shape"):
        Trainer(toy_config(tmp_path / "d", f"train.init_from={src}", "model.embed_dim=16"), data)
    with pytest.raises(ConfigError, match="init_from=.*is missing"):
        Trainer(toy_config(tmp_path / "e", f"train.init_from={src}", "model.options={pooling: netrvlad}"), data)
    with pytest.raises(FileNotFoundError):
        Trainer(toy_config(tmp_path / "f", f"train.init_from={tmp_path / 'nope.pt'}"), data)
