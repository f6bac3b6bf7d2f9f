"""The whole model: towers as children, locks, live temperature, checkpoints of trained and
frozen towers, the scorer's OT cost, and the library never importing the trainer."""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from model_helpers import tiny_sets

from soundseek.config import ConfigError, apply_overrides
from soundseek.models import Config, create_model, load_model
from soundseek.models.checkpoint import save_checkpoint
from soundseek.models.factory import checkpoint_payload

SRC = Path(__file__).resolve().parents[1] / "src" / "soundseek"


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def tiny_cfg(root, *sets: str) -> Config:
    return apply_overrides(Config(), tiny_sets(root) + list(sets))


def waves(n=3, seconds=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, int(32000 * seconds), generator=g) * 0.1
    return x, torch.ones_like(x, dtype=torch.bool)


def test_towers_are_children_and_lr_groups_reach_them(tiny_root):
    cfg = tiny_cfg(tiny_root, "encoders.lock_audio=false", "encoders.lock_text=false")
    model = create_model(cfg)
    assert [n for n, _ in model.named_children()] == ["audio_encoder", "text_encoder", "scorer", "loss"]
    groups = model.param_groups(1e-3, {"audio_encoder": 1e-5, "text_encoder": 2e-5})
    by = {g["name"]: g for g in groups}
    assert by["audio_encoder"]["lr"] == 1e-5 and by["text_encoder"]["lr"] == 2e-5 and by["scorer"]["lr"] == 1e-3
    assert {id(p) for p in by["audio_encoder"]["params"]} == {id(p) for p in model.audio_encoder.parameters()}
    with pytest.raises(ConfigError, match="Valid: audio_encoder, text_encoder, scorer, loss"):
        model.param_groups(1e-3, {"audio": 1e-5})


def test_lock_freezes_a_tower_but_its_last_blocks_and_keeps_frozen_parts_in_eval(tiny_root):
    model = create_model(tiny_cfg(tiny_root, "encoders.lock_text=false"))  # audio locked by default
    assert model.trained_towers() == {"audio_encoder": False, "text_encoder": True}
    model.train()
    assert not model.audio_encoder.training and model.text_encoder.training and model.scorer.training
    model.lock_text(unlocked_blocks=1)
    layers = model.text_encoder.model.encoder.layer
    assert all(p.requires_grad for p in layers[-1].parameters())
    assert not any(p.requires_grad for p in layers[0].parameters())
    assert not any(p.requires_grad for p in model.text_encoder.model.embeddings.parameters())
    assert not layers[0].training and layers[-1].training
    # a frozen tower gets no gradient; the unlocked block does
    x, m = waves(2)
    text = model.encode_captions(["a dog barks", "rain falls"])
    audio = model.encode_waves(x, m)
    model(text, audio, torch.arange(2)).backward()
    assert all(p.grad is None for p in model.audio_encoder.parameters())
    assert all(p.grad is None for p in layers[0].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layers[-1].parameters())
    with pytest.raises(ValueError, match="has 2 blocks"):
        model.lock_text(unlocked_blocks=3)


@pytest.mark.parametrize("name,options,learnable", [
    ("ntxent", {"temperature": 0.05}, False),
    ("ntxent", {"temperature": 0.05, "learnable": True}, True),
    ("sigmoid", {"learnable": False}, False),
    ("sigmoid", {}, True),
    ("pmr", {"temperature": 0.07}, False),
    ("triplet_max", {}, False),
    ("mltm", {}, False),
])
def test_temperature_is_the_losses_live_value(name, options, learnable):
    cfg = apply_overrides(Config(), [f"loss.name={name}", f"loss.options={options!r}".replace("True", "true").replace("False", "false")])
    model = create_model(cfg, audio_dim=6, text_dim=5, towers=False)
    expected = {"ntxent": 0.05, "sigmoid": 0.1, "pmr": 0.07}.get(name, 1.0)
    assert model.temperature() == pytest.approx(expected, rel=1e-6)
    if learnable:  # move the scale as a training step would; SK must see the new value
        with torch.no_grad():
            model.loss.logit_scale.add_(0.5)
        assert model.temperature() == pytest.approx(expected * math.exp(-0.5), rel=1e-5)
        assert model.logit_scale() == pytest.approx(1 / model.temperature())


def test_trained_tower_is_saved_frozen_tower_is_a_reference(tiny_root, tmp_path):
    cfg = tiny_cfg(tiny_root, "encoders.lock_audio=false")  # text stays frozen
    torch.manual_seed(1)
    model = create_model(cfg)
    with torch.no_grad():  # "train" the audio tower
        for p in model.audio_encoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    payload = checkpoint_payload(model)
    assert any(k.startswith("audio_encoder.") for k in payload["model"])
    assert not any(k.startswith("text_encoder.") for k in payload["model"])
    assert payload["towers"]["audio_encoder"]["trained"] and not payload["towers"]["text_encoder"]["trained"]
    save_checkpoint(tmp_path / "m.pt", payload)
    back = load_model(tmp_path / "m.pt")
    model.eval()
    x, m = waves(2, seed=3)
    with torch.no_grad():
        for rep_a, rep_b in ((model.encode_waves(x, m), back.encode_waves(x, m)),
                             (model.encode_captions(["loud engine hum"]), back.encode_captions(["loud engine hum"]))):
            torch.testing.assert_close(rep_a["emb"], rep_b["emb"], rtol=0, atol=1e-6)


def test_partly_unlocked_tower_saves_only_its_trained_blocks(tiny_root, tmp_path):
    """A text tower tuned in its last block ships that block; the frozen rest comes from its source."""
    cfg = tiny_cfg(tiny_root, "encoders.text_unlocked_blocks=1")  # tiny BERT: 2 layers, last one trains
    torch.manual_seed(2)
    model = create_model(cfg)
    trainable = {f"text_encoder.{n}" for n, p in model.text_encoder.named_parameters() if p.requires_grad}
    assert trainable and all(".1." in n or "layer.1" in n for n in trainable)
    with torch.no_grad():  # "train" the unlocked block
        for p in model.text_encoder.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    payload = checkpoint_payload(model)
    saved = {k for k in payload["model"] if k.startswith("text_encoder.")}
    assert saved == trainable  # no frozen tensor of the tower (BERT's last layer has no buffers)
    assert payload["towers"]["text_encoder"] == {**payload["towers"]["text_encoder"], "trained": True, "partial": True}
    n_all = sum(p.numel() for p in model.text_encoder.parameters())
    assert sum(payload["model"][k].numel() for k in saved) < n_all
    save_checkpoint(tmp_path / "m.pt", payload)
    back = load_model(tmp_path / "m.pt")
    model.eval()
    with torch.no_grad():
        a = model.encode_captions(["a dog barks", "rain falls"])["emb"]
        b = back.encode_captions(["a dog barks", "rain falls"])["emb"]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # the trained block really is the saved one, not the source's
    fresh = create_model(cfg).eval()
    with torch.no_grad():
        assert not torch.allclose(fresh.encode_captions(["a dog barks"])["emb"], b[:1], atol=1e-4)
    # a checkpoint missing the trained block is refused
    del payload["model"][sorted(saved)[0]]
    save_checkpoint(tmp_path / "broken.pt", payload)
    with pytest.raises(ConfigError, match="missing"):
        load_model(tmp_path / "broken.pt")


def test_old_heads_only_checkpoint_loads_with_its_towers():
    from soundseek.models import load
    from soundseek.models.checkpoint import load_checkpoint
    from soundseek.models.factory import resolve

    v1 = Path(__file__).parent / "fixtures" / "default_v1.pt"  # a copy of the first shipped default model
    ckpt = load_checkpoint(v1)
    assert ckpt["version"] == 1 and "towers" not in ckpt  # written before towers were part of the model
    model = load(v1)
    assert load(resolve("default")).audio_encoder is not None  # and the shipped one, whatever its version
    assert model.audio_encoder is not None and model.trained_towers() == {"audio_encoder": False, "text_encoder": False}


def test_ot_cost_comes_from_the_scorer_not_the_score_range():
    """A Mahalanobis model with small distances has scores in [-1, 0]: still a distance."""
    maha = create_model(apply_overrides(Config(), ["model.options={similarity: mahalanobis}"]), 6, 5, towers=False)
    cos = create_model(Config(), 6, 5, towers=False)
    s = -torch.rand(4, 3) * 0.5
    torch.testing.assert_close(maha.ot_cost(s), -s)
    torch.testing.assert_close(cos.ot_cost(s), torch.sqrt(2 - 2 * s))


def test_evaluate_uses_the_scorers_ot_cost(monkeypatch):
    from test_train import toy_config, toy_prepared

    from soundseek import ot
    from soundseek.train.evaluate import evaluate, score_view

    data = toy_prepared()
    model = create_model(apply_overrides(toy_config(Path("/nonexistent")), ["model.options={similarity: mahalanobis}"]),
                         data.audio_dim, data.text_dim, towers=False)
    with torch.no_grad():  # small distances: scores inside [-1, 1], where a range test would guess "cosine"
        for p in model.scorer.metric.parameters():
            p.mul_(0.01)
    seen = []
    real = ot.plan_scores
    monkeypatch.setattr(ot, "plan_scores", lambda cost, reg: seen.append(cost) or real(cost, reg))
    out = evaluate(model, data, "test", ot=True)
    scores = score_view(model, data, data.view("test"))
    assert scores.max() <= 0 and scores.min() >= -1  # the range that used to be taken for cosines
    assert "t2a_ot" in out and len(seen) == 2
    torch.testing.assert_close(seen[0], -scores.double())


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    pkg = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}
    return out


def test_the_library_never_imports_the_trainer():
    offenders = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).parts
        if rel[0] in ("cli", "train"):
            continue
        bad = sorted(m for m in _imports(path) if m == "soundseek.train" or m.startswith("soundseek.train."))
        if bad:
            offenders.append(f"{'/'.join(rel)}: {bad}")
    assert not offenders, offenders
    assert _imports(SRC / "train" / "loop.py") & {"soundseek.models"}  # the parser sees imports at all


def test_the_index_never_imports_the_service():
    offenders = [str(p.relative_to(SRC)) for p in (SRC / "index").rglob("*.py")
                 if any(m == "soundseek.service" or m.startswith("soundseek.service.") for m in _imports(p))]
    assert not offenders, offenders


def test_gradient_checkpointing_gives_the_same_gradients(tiny_root):
    cfg = tiny_cfg(tiny_root, "encoders.lock_audio=false", "encoders.lock_text=false")
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = create_model(cfg).train()
        if ckpt:
            model.enable_gradient_checkpointing()
        x, m = waves(2)
        model(model.encode_captions(["a dog barks", "rain falls"]), model.encode_waves(x, m), torch.arange(2)).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert set(grads[0]) == set(grads[1]) and any(k.startswith("audio_encoder.blocks") for k in grads[0])
    for k in grads[0]:
        torch.testing.assert_close(grads[0][k], grads[1][k], rtol=1e-5, atol=1e-6, msg=k)


def test_layer_decay_scales_block_learning_rates(tiny_root):
    model = create_model(tiny_cfg(tiny_root, "encoders.lock_text=false"))
    groups = {g["name"]: g["lr"] for g in model.param_groups(1.0, {"text_encoder": 0.1}, layer_decay=0.5)}
    assert groups["text_encoder.block1"] == pytest.approx(0.1) and groups["text_encoder.block0"] == pytest.approx(0.05)
    assert groups["text_encoder.other"] == pytest.approx(0.025) and groups["scorer"] == 1.0


@pytest.mark.parametrize("change, message", [
    # 2 x (100k x 100k) floats = 80 GB if built before the tensors were checked
    ({"embed_dim": 100_000, "options": {"pooling": "meanmax", "hidden": 100_000}}, "the recipe needs"),
    ({"scorer": "ensemble", "embed_dim": 8 * 10_000,
      "options": {"members": [{"embed_dim": 8, "options": {}}] * 10_000}}, "at most 64 members"),
    ({"options": {"pooling": "netrvlad"}}, "is missing"),
])
def test_a_recipe_that_does_not_match_its_tensors_is_refused_before_allocating(tmp_path, change, message):
    """A damaged or hostile checkpoint recipe (huge widths, thousands of ensemble members) fails
    with an error, built on the meta device first, instead of exhausting memory."""
    import resource

    cfg = apply_overrides(Config(), ["model.embed_dim=8"])
    model = create_model(cfg, audio_dim=6, text_dim=5, towers=False)
    payload = checkpoint_payload(model)
    payload["config"]["model"].update(change)
    save_checkpoint(tmp_path / "bad.pt", payload)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match=message):
        load_model(tmp_path / "bad.pt", towers=False)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB: nothing big allocated


@pytest.mark.parametrize("options, trained, message", [
    # conv weights of (100k x 2**i) channels: terabytes if built before the tensors were checked
    ({"channels": 100_000, "n_blocks": 2, "out_dim": 8}, True, "the recipe needs"),
    ({"channels": 100_000, "n_blocks": 2, "out_dim": 8}, False, "randomly initialised elements"),
    ({"channels": 4, "n_blocks": 2, "out_dim": 8, "bogus": 1}, True, "does not build its audio encoder"),
])
def test_a_random_tower_larger_than_its_tensors_is_refused_before_allocating(tiny_root, tmp_path, options, trained,
                                                                             message):
    """A recipe sets the size of a randomly initialised tower (small_cnn, pretrained=false): it is
    built on the meta device and checked against the file before anything is allocated."""
    import resource

    cfg = tiny_cfg(tiny_root, f"encoders.lock_audio={str(not trained).lower()}")
    payload = checkpoint_payload(create_model(cfg))
    payload["config"]["encoders"]["audio_options"] = {**options, "dropout": 0.0}
    save_checkpoint(tmp_path / "bad.pt", payload)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ConfigError, match=message):
        load_model(tmp_path / "bad.pt")
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KiB


def test_a_stored_random_tower_must_be_stored_whole(tiny_root, tmp_path):
    model = create_model(tiny_cfg(tiny_root, "encoders.lock_audio=false"))
    payload = checkpoint_payload(model)
    dropped = next(k for k in payload["model"] if k.startswith("audio_encoder.blocks"))
    del payload["model"][dropped]
    save_checkpoint(tmp_path / "cut.pt", payload)
    with pytest.raises(ConfigError, match=f"{dropped} is missing"):
        load_model(tmp_path / "cut.pt")
    # the untouched file loads
    save_checkpoint(tmp_path / "ok.pt", checkpoint_payload(model))
    assert load_model(tmp_path / "ok.pt").trained_towers()["audio_encoder"]


def test_a_random_transformer_tower_of_hostile_width_is_refused(tiny_root, tmp_path):
    payload = checkpoint_payload(create_model(tiny_cfg(tiny_root)))
    payload["config"]["encoders"].update(audio="passt", audio_options={"pretrained": False, "embed_dim": 120_000,
                                                                       "depth": 2})
    save_checkpoint(tmp_path / "bad.pt", payload)
    with pytest.raises(ConfigError, match="passt audio encoder would have 345,774,721,054"):
        load_model(tmp_path / "bad.pt")
