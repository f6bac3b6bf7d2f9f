from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from soundseek.config import ConfigError, apply_overrides, from_dict, load_yaml, to_dict
from soundseek.registry import Registry
from soundseek.train.config import Config


@dataclass
class Opt:
    lr: float = 1e-4
    kind: Literal["adam", "adamw"] = "adamw"
    groups: dict[str, float] = field(default_factory=dict)


@dataclass
class Cfg:
    opt: Opt = field(default_factory=Opt)
    name: str = "x"
    epochs: int = 3
    flag: bool = False


def test_nested_from_dict_and_overrides():
    c = from_dict(Cfg, {"opt": {"lr": 0.1}, "epochs": 5})
    assert c.opt.lr == 0.1 and c.epochs == 5 and c.opt.kind == "adamw"
    c2 = apply_overrides(c, ["opt.lr=3e-4", "name=y", "flag=true", "opt.groups={scorer: 0.5}"])
    assert c2.opt.lr == pytest.approx(3e-4) and c2.name == "y" and c2.flag is True
    assert c2.opt.groups == {"scorer": 0.5}
    assert c.opt.lr == 0.1  # the original is untouched


@pytest.mark.parametrize(
    "data, match",
    [
        ({"opt": {"l_r": 1}}, r"Unknown key 'opt.l_r'. Valid keys of opt: lr, kind, groups"),
        ({"nmae": "a"}, r"Unknown key 'nmae'.*name"),
        ({"opt": {"kind": "sgd"}}, r"Invalid value 'sgd' for opt.kind. Valid: adam, adamw"),
        ({"epochs": 2.5}, r"epochs: expected an integer"),
        ({"flag": "maybe"}, r"flag: expected true/false"),
        ({"opt": 3}, r"opt: expected a mapping"),
    ],
)
def test_bad_configs_are_rejected_with_valid_keys(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(Cfg, data)


def test_bad_overrides():
    c = Cfg()
    with pytest.raises(ConfigError, match="Unknown key 'opt.beta'"):
        apply_overrides(c, ["opt.beta=1"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_overrides(c, ["epochs"])


def test_full_config_roundtrip_and_recipes(tmp_path):
    cfg = Config()
    assert from_dict(Config, to_dict(cfg)) == cfg
    p = tmp_path / "r.yaml"
    p.write_text("train:\n  epochs: 2\nloss:\n  name: sigmoid\n")
    c = load_yaml(Config, p, ["train.batch_size=8"])
    assert c.train.epochs == 2 and c.loss.name == "sigmoid" and c.train.batch_size == 8
    p.write_text("train:\n  epoch: 2\n")
    with pytest.raises(ConfigError, match="Unknown key 'train.epoch'"):
        load_yaml(Config, p)
    with pytest.raises(ConfigError, match="data.noise"):
        from_dict(Config, {"data": {"noise": 1.5}})


def test_shipped_recipes_parse():
    from conftest import REPO

    recipes = sorted((REPO / "configs").rglob("*.yaml"))
    assert recipes, "configs/ holds the recipes"
    for r in recipes:
        load_yaml(Config, r)


def test_registry_lists_valid_names():
    reg: Registry = Registry("pooling")
    reg.register("mean")(int)
    reg.register("max")(float)
    assert reg.get("max") is float and reg.names() == ["max", "mean"]
    with pytest.raises(KeyError, match="Invalid pooling 'meen'. Valid: max, mean"):
        reg.get("meen")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("mean")(str)


def test_registry_build_checks_options_once_for_every_registry():
    class Head:
        def __init__(self, dim: int, scale: float = 1.0) -> None:
            self.dim, self.scale = dim, scale

    def anything(**kw):
        return kw

    reg: Registry = Registry("head")
    reg.add("head", Head)
    reg.add("any", anything)
    assert reg.options("head") == ["dim", "scale"] and reg.options("head", reserved=("dim",)) == ["scale"]
    assert reg.build("head", dim=3).dim == 3 and reg.build("any", x=1) == {"x": 1}
    with pytest.raises(ConfigError, match="Unknown option 'scael' for head 'head'. Valid: dim, scale"):
        reg.build("head", dim=3, scael=2.0)
    with pytest.raises(ConfigError, match=r"Unknown key model.options.'dim' for head 'head'. Valid: scale$"):
        reg.check_options("head", {"dim": 3}, "model.options", reserved=("dim",))
    with pytest.raises(KeyError, match="Invalid head 'hed'. Valid: any, head"):
        reg.build("hed")
    from soundseek.losses import LOSSES
    from soundseek.scoring import SCORERS

    for r in (LOSSES, SCORERS):  # the package's registries answer the same way
        with pytest.raises(ConfigError, match=f"Unknown key x.'nope' for {r.kind}"):
            r.check_options(r.names()[0], {"nope": 1}, "x")


def test_every_recipe_builds_its_model_and_names_missing_weights_clearly():
    """Each recipe's scorer/loss options are valid; recipes needing supplied weights fail with a
    clear error naming the file (never a TypeError from a wrong keyword)."""
    from conftest import REPO

    from soundseek.models.factory import build_towers, create_model

    for r in sorted((REPO / "configs").rglob("*.yaml")):
        cfg = load_yaml(Config, r)
        shared = cfg.model.scorer == "clap"  # CLAP's scorer needs both towers in one space
        create_model(cfg, audio_dim=32 if shared else 64, text_dim=32, towers=False)
        if cfg.encoders.audio_checkpoint or cfg.encoders.text_path:
            with pytest.raises((FileNotFoundError, ConfigError, OSError, ValueError)) as e:
                build_towers(cfg)
            assert "weights/" in str(e.value) or "not found" in str(e.value).lower() or "No such file" in str(e.value), (r, e.value)


def test_recipes_are_found_by_file_or_by_packaged_name(tmp_path, monkeypatch):
    from soundseek.cli.common import RECIPES, recipe_path

    assert RECIPES.is_dir() and RECIPES.parent.name == "soundseek"  # shipped inside the package
    monkeypatch.chdir(tmp_path)  # away from the repository's configs/ link
    assert recipe_path("gpa") == recipe_path("gpa.yaml") == recipe_path("configs/gpa.yaml") == RECIPES / "gpa.yaml"
    assert recipe_path("paper/gpa-resnet38-bert") == RECIPES / "paper" / "gpa-resnet38-bert.yaml"
    (tmp_path / "gpa.yaml").write_text("train: {epochs: 1}\n")
    assert recipe_path("gpa.yaml") == Path("gpa.yaml")  # a file of the user's comes first
    for bad in ("nope", "../soundseek/configs/gpa"):
        with pytest.raises(FileNotFoundError, match="Packaged: .*default.*gpa"):
            recipe_path(bad)
