"""End-to-end training on real clips: a real audio encoder (aisfx) and MiniLM fine-tuned from
raw audio and text, per-tower learning rates, frozen towers without gradients, and frozen
towers served from a feature cache training exactly what they train live."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from soundseek.config import apply_overrides
from soundseek.models import Config

CLIPS = [0, 1, 2, 4, 7, 12, 15, 22]  # real-sfx-dev clips of 1.5 s or more


def real_manifest(real_sfx, tmp_path):
    rows = [json.loads(l) for l in (real_sfx / "manifest.jsonl").read_text().splitlines()]
    out = tmp_path / "manifest.jsonl"
    out.write_text("\n".join(json.dumps({"audio": str(real_sfx / rows[i]["audio"]), "captions": rows[i]["captions"][:1],
                                         "split": "train"}) for i in CLIPS) + "\n")
    return out


def cfg_for(tmp_path, manifest, *sets: str) -> Config:
    return apply_overrides(Config(), [
        f"data.path={manifest}", f"data.cache_dir={tmp_path / 'cache'}", f"train.out_dir={tmp_path / 'run'}",
        "data.val_split=none", "train.progress=false", "train.tensorboard=false", "train.batch_size=4",
        "optim.warmup_epochs=0", "optim.scheduler=none", "model.embed_dim=64", *sets,
    ])


def test_aisfx_and_minilm_fine_tune_end_to_end_and_lr_groups_are_honoured(real_sfx, tmp_path):
    from soundseek.train.data import prepare
    from soundseek.train.loop import Trainer

    cfg = cfg_for(tmp_path, real_manifest(real_sfx, tmp_path), "encoders.lock_audio=false", "encoders.lock_text=false",
                  "data.max_seconds=3", "train.crop_seconds=1.0", "train.epochs=5", "train.gain_db=3", "train.shift=0.1",
                  "optim.lr=1e-3", "optim.lr_groups={audio_encoder: 1.0e-4, text_encoder: 2.0e-5}")
    data = prepare(cfg, progress=False)
    assert data.audio is None and data.text is None  # trained towers run live, nothing cached
    trainer = Trainer(cfg, data)
    lrs = {g["name"]: g["lr"] for g in trainer.opt.param_groups}
    assert lrs == {"audio_encoder": 1e-4, "text_encoder": 2e-5, "scorer": 1e-3}
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.fit()
    losses = [h["loss"] for h in trainer.history]
    assert losses[-1] < losses[0], losses
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert any(n.startswith("audio_encoder.conv_block4") for n in moved)
    assert any(n.startswith("text_encoder.model.encoder.layer.5") for n in moved)
    # the checkpoint holds both trained towers and reloads to the same model
    from soundseek.models import load_model
    from soundseek.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["towers"]["audio_encoder"]["trained"] and any(k.startswith("text_encoder.") for k in ckpt["model"])
    back = load_model(tmp_path / "run" / "last.pt")
    trainer.model.eval()
    with torch.no_grad():
        a = trainer.model.encode_captions(["ambient drone"])["emb"]
        b = back.encode_captions(["ambient drone"])["emb"]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_frozen_tower_gets_no_gradient(real_sfx, tmp_path):
    from soundseek.train.data import prepare
    from soundseek.train.loop import Trainer

    cfg = cfg_for(tmp_path, real_manifest(real_sfx, tmp_path), "encoders.lock_audio=false", "data.max_seconds=1",
                  "train.epochs=1")
    data = prepare(cfg, progress=False)
    assert data.audio is None and data.text is not None  # frozen MiniLM served from the cache
    trainer = Trainer(cfg, data)
    trainer.train_step(np.arange(4))
    assert all(p.grad is None and not p.requires_grad for p in trainer.model.text_encoder.parameters())
    assert any(p.grad is not None for p in trainer.model.audio_encoder.parameters())


def test_cached_frozen_equals_live_frozen_in_float64(real_sfx, tmp_path):
    """Same loss and gradients whether frozen towers run live or are read from their features."""
    from soundseek.train.data import prepare
    from soundseek.train.loop import Trainer
    from soundseek.train.memory import ArrayAudioStore, ArrayTextStore

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        manifest = real_manifest(real_sfx, tmp_path)
        live_cfg = cfg_for(tmp_path, manifest, "train.cache_frozen=false", "data.max_seconds=1.0", "train.batch_size=8",
                           "model.options={pooling: meanmax, dropout: 0.0}", "optim.grad_clip=0")
        live = prepare(live_cfg, progress=False)
        audio, text = live.towers
        audio.double(), text.double()
        view = live.view("train")
        from soundseek.audio.io import load_audio

        with torch.no_grad():  # each clip and caption encoded on its own, in float64
            frames = []
            for c in view.clips:
                w = torch.from_numpy(load_audio(c.audio, audio.sample_rate, max_seconds=1.0)).double()[None]
                f, m = audio(w, torch.ones_like(w, dtype=torch.bool))
                frames.append(f[0][m[0]].numpy())
            feats = [text([cap]) for cap in view.captions]
        tokens = [f.tokens[0][f.mask[0]].numpy() for f in feats]
        sent = np.stack([f.sentence[0].numpy() for f in feats])
        from dataclasses import replace

        cached_view = replace(view, clip_rows=np.arange(view.n_clips), caption_rows=np.arange(view.n_captions))
        cached = replace(live, audio=ArrayAudioStore(frames), text=ArrayTextStore(tokens, sent),
                         splits={"train": cached_view})
        rows = np.arange(view.n_captions)
        out = {}
        for name, cfg, data in (("live", live_cfg, live),
                                ("cached", apply_overrides(live_cfg, ["train.cache_frozen=true"]), cached)):
            t = Trainer(cfg, data)
            loss = t.train_step(rows)
            out[name] = (loss, {n: p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None})
        (l1, g1), (l2, g2) = out["live"], out["cached"]
        assert abs(l1 - l2) < 1e-6 and set(g1) == set(g2) and g1
        for k in g1:
            torch.testing.assert_close(g1[k], g2[k], rtol=0, atol=1e-6, msg=k)
    finally:
        torch.set_default_dtype(old)


def test_grad_cache_with_a_live_tower_gives_the_whole_batch_gradients(real_sfx, tmp_path):
    """GradCache through a trained audio tower (aisfx's last block, batch-norm in train mode):
    the gradients equal those of the micro-batches encoded with gradients and scored together."""
    from soundseek.train.data import prepare
    from soundseek.train.loop import Trainer
    from soundseek.train.step import concat_reps

    cfg = cfg_for(tmp_path, real_manifest(real_sfx, tmp_path), "encoders.audio_unlocked_blocks=1",
                  "data.max_seconds=1", "train.epochs=1", "train.accumulate=2", "train.grad_cache=true",
                  "model.options={pooling: meanmax, dropout: 0.2}")
    data = prepare(cfg, progress=False)
    trainer = Trainer(cfg, data)
    trainer.model.train()
    micro = np.array_split(np.arange(4), 2)
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    assert any(p.requires_grad for p in trainer.model.audio_encoder.parameters())
    torch.manual_seed(5)
    batches = [trainer._batch(m, None) for m in micro]
    reps = [trainer.step_module.encode(b) for b in batches]
    loss = trainer.model(concat_reps([r[0] for r in reps]), concat_reps([r[1] for r in reps]),
                         torch.cat([b["clip_ids"] for b in batches]))
    want = torch.autograd.grad(loss, params)
    trainer.opt.zero_grad(set_to_none=True)
    torch.manual_seed(5)
    trainer._grad_cache_backward(micro)
    for p, w in zip(params, want):
        torch.testing.assert_close(p.grad, w, rtol=1e-4, atol=1e-6)
