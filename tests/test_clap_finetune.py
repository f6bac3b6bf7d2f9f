"""CLAP towers are trainable modules: two optimiser steps on a batch change them and lower the
loss (with the checkpoint's own temperature); the frame-level towers train under TAP too."""
from __future__ import annotations

import math

import pytest
import torch

from hf_helpers import make_tiny_clap, tone

CAPTIONS = ["a dog barks loudly", "rain falls on metal roof", "car engine starts", "birds sing", "door slams",
            "bell rings"]


@pytest.fixture(scope="module")
def clap(tmp_path_factory):
    return make_tiny_clap(tmp_path_factory.mktemp("ft") / "clap", fusion=False, seed=5)


def _batch():
    from soundseek.audio.io import batch_waves

    return batch_waves([tone(0.3 + 0.1 * i, 200.0 * (i + 1), seed=i) for i in range(len(CAPTIONS))])


def _snapshot(*modules):
    return [p.detach().clone() for m in modules for p in m.parameters()]


def _fit_two_steps(audio, text, model, lr: float = 3e-3):
    wave, mask = _batch()
    ids = torch.arange(len(CAPTIONS))

    def loss_of():
        f, m = audio(wave, mask)
        t = text(CAPTIONS)
        return model(model.encode_text(t.tokens, t.mask, t.sentence), model.encode_audio(f, m), ids)

    params = list({id(p): p for mod in (audio, text, model) for p in mod.parameters() if p.requires_grad}.values())
    opt = torch.optim.Adam(params, lr=lr)
    for mod in (audio, text, model):
        mod.eval()
    with torch.no_grad():
        before = float(loss_of())
    snap = _snapshot(audio, text)
    for mod in (audio, text, model):
        mod.train()
    torch.manual_seed(1)  # dropout
    for _ in range(2):
        opt.zero_grad()
        loss = loss_of()
        loss.backward()
        opt.step()
    for mod in (audio, text, model):
        mod.eval()
    with torch.no_grad():
        after = float(loss_of())
    changed = [not torch.equal(a, b) for a, b in zip(snap, _snapshot(audio, text))]
    return before, after, changed


def test_finetune_clap_towers_with_its_own_scoring(clap):
    """The hf-clap recipe with its towers unlocked: CLAP's scoring and temperature, trained end to end."""
    from soundseek.models import create_model
    from soundseek.models.spec import family_config

    cfg = family_config(f"hf-clap:{clap}")
    cfg.encoders.lock_audio = cfg.encoders.lock_text = False
    model = create_model(cfg)
    audio, text = model.audio_encoder, model.text_encoder
    assert model.loss.temperature == pytest.approx(1 / 20.0)  # the checkpoint's logit_scale_a = ln 20
    before, after, changed = _fit_two_steps(audio, text, model)
    assert math.isfinite(before) and after < before
    assert sum(changed) > 0.9 * len(changed)  # (nearly) every tower tensor moved


def test_finetune_frame_level_towers_under_tap(clap):
    from soundseek.losses.ntxent import NTXentLoss
    from soundseek.model import RetrievalModel
    from soundseek.models.clap import ClapAudioEncoder, ClapTextEncoder
    from soundseek.scoring import build_scorer

    audio = ClapAudioEncoder.from_pretrained(clap, output="frames", trainable=True)
    text = ClapTextEncoder.from_pretrained(clap, trainable=True)
    torch.manual_seed(0)  # the TAP heads' initialisation
    model = RetrievalModel(audio, text, build_scorer("tap", audio_dim=audio.out_dim, text_dim=text.out_dim,
                                                     embed_dim=8), NTXentLoss(temperature=0.02))
    # random tiny towers give nearly equal features for every input: a low temperature and a
    # larger step make the first two steps' progress measurable
    before, after, changed = _fit_two_steps(audio, text, model, lr=1e-2)
    assert after < before and sum(changed) > 0.9 * len(changed)


def test_frozen_towers_do_not_train(clap):
    from soundseek.models.clap import ClapAudioEncoder, ClapTextEncoder

    audio = ClapAudioEncoder.from_pretrained(clap, output="frames", trainable=False)
    text = ClapTextEncoder.from_pretrained(clap, trainable=False)
    assert not any(p.requires_grad for m in (audio, text) for p in m.parameters())


def test_lock_groups_partition_the_tower_weights(clap):
    from soundseek.models.clap import ClapAudioEncoder, ClapTextEncoder

    for tower in (ClapAudioEncoder.from_pretrained(clap, output="frames"), ClapTextEncoder.from_pretrained(clap)):
        groups = tower.lock_groups()
        ids = [id(p) for g in groups for p in g.parameters()]
        assert len(ids) == len(set(ids)) == len(list(tower.parameters())) and len(groups) >= 2


def test_clap_finetune_recipe_trains_the_towers_end_to_end(clap, tmp_path, capsys):
    """configs/clap-finetune.yaml through `soundseek train` (towers unlocked, raw audio), then the
    fine-tuned CLAP evaluates from its checkpoint like any model."""
    from transformers import ClapModel

    from conftest import REPO
    from soundseek.cli.main import main
    from soundseek.models import load
    from test_hf_clap import _write_corpus

    _write_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    sets = [f"data.path={tmp_path / 'corpus'}", f"data.cache_dir={tmp_path / 'cache'}", "data.val_split=test",
            f"encoders.audio_options={{path: {clap}, output: embedding}}", f"encoders.text_path={clap}",
            "model.embed_dim=12", "train.epochs=2", "train.batch_size=4", "optim.lr=1.0e-3", f"train.out_dir={out}",
            "train.progress=false", "train.tensorboard=false"]
    assert main(["train", str(REPO / "configs" / "clap-finetune.yaml"), *[a for s in sets for a in ("--set", s)]]) == 0
    tuned = load(out / "best.pt")
    assert tuned.trained_towers() == {"audio_encoder": True, "text_encoder": True}
    ref = ClapModel.from_pretrained(str(clap)).state_dict()
    moved = [not torch.equal(v, ref[f"audio_model.{k}"]) for k, v in tuned.audio_encoder.audio_model.state_dict().items()
             if k.endswith("weight") and f"audio_model.{k}" in ref]
    assert moved and sum(moved) > 0.5 * len(moved)
    capsys.readouterr()
    assert main(["eval", str(out / "best.pt"), "--split", "test", "--json"]) == 0
    assert "t2a" in capsys.readouterr().out
