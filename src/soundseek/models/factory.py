"""Whole models from recipes and checkpoints: :func:`create_model`, :func:`load_model` and
:func:`load`, the one entry point that turns a model spec into a :class:`RetrievalModel`.

Example::

    from soundseek.models import load
    model = load("default")                 # the model shipped in the package
    model = load("runs/x/best.pt")          # a checkpoint of `soundseek train`
    rep = model.encode_captions(["a dog barks"])

Weights come only from local files or installed packages (the recipe's ``encoders`` section
names them); nothing is downloaded.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from soundseek.config import ConfigError, from_dict, to_dict
from soundseek.models.checkpoint import load_checkpoint
from soundseek.models.config import Config
from soundseek.models.retrieval import TOWERS, RetrievalModel

log = logging.getLogger(__name__)

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "assets" / "default.pt"
MAX_UNSTORED_TOWER = 2**30
"""Most elements (parameters + buffers) a randomly initialised tower that a checkpoint does not
store may have (4 GiB of float32; the largest built-in architecture, PaSST/ATST base, is ~0.1 G)."""


def build_towers(cfg: Config) -> tuple[nn.Module, nn.Module]:
    """The audio and text encoders named by ``cfg.encoders`` (in eval mode, all trainable)."""
    from soundseek.encoders import build_audio_encoder, build_text_encoder

    enc = cfg.encoders
    kw = dict(enc.audio_options)
    if enc.audio_checkpoint:
        kw["path"] = enc.audio_checkpoint
    audio = build_audio_encoder(enc.audio, **kw)
    # a tower that never trains needs only its forward (a BERT encoder then loads without transformers)
    frozen = bool(enc.lock_text) and int(enc.text_unlocked_blocks) == 0
    tkw: dict[str, Any] = {"pooling": enc.text_pooling, "max_length": enc.max_tokens, "frozen": frozen}
    if enc.text_path:
        tkw["path"] = enc.text_path
    text = build_text_encoder(enc.text, **tkw)
    return audio.eval(), text.eval()


def build_heads(cfg: Config, audio_dim: int, text_dim: int) -> tuple[nn.Module, nn.Module]:
    """The scorer and loss named by ``cfg.model`` / ``cfg.loss`` (options checked)."""
    from soundseek.losses import LOSSES
    from soundseek.scoring import SCORERS
    from soundseek.scoring.base import WIDTHS

    SCORERS.check_options(cfg.model.scorer, cfg.model.options, "model.options", reserved=WIDTHS)
    scorer = SCORERS.get(cfg.model.scorer)(audio_dim=audio_dim, text_dim=text_dim, embed_dim=cfg.model.embed_dim,
                                           **cfg.model.options)
    LOSSES.check_options(cfg.loss.name, cfg.loss.options, "loss.options")
    return scorer, LOSSES.get(cfg.loss.name)(**cfg.loss.options)


def create_model(cfg: Config, audio_dim: int | None = None, text_dim: int | None = None,
                 towers: bool | tuple[nn.Module, nn.Module] = True) -> RetrievalModel:
    """The model of a recipe, towers locked as ``cfg.encoders`` says.

    Args:
        cfg: the recipe.
        audio_dim, text_dim: tower output widths; taken from the towers when they are built.
        towers: True: build them from ``cfg.encoders``; a pair (audio, text) of modules to use;
            False: heads only (fed cached features; both widths required).
    """
    if towers is False:
        if audio_dim is None or text_dim is None:
            raise ValueError("a heads-only model needs audio_dim and text_dim")
        audio = text = None
    else:
        audio, text = build_towers(cfg) if towers is True else towers
        for name, tower, dim in (("audio", audio, audio_dim), ("text", text, text_dim)):
            if dim is not None and int(dim) != int(tower.out_dim):
                raise ConfigError(f"The {name} encoder gives {tower.out_dim}-d features, the model expects {dim}")
        audio_dim, text_dim = int(audio.out_dim), int(text.out_dim)
    scorer, loss = build_heads(cfg, int(audio_dim), int(text_dim))
    model = RetrievalModel(audio, text, scorer, loss, cfg.model.nuclear_norm)
    if cfg.loss.distill:
        from soundseek.losses.distill import DistillationLoss

        model.distill = DistillationLoss(cfg.loss.distill_weight, cfg.loss.distill_temperature)
    if audio is not None and cfg.encoders.lock_audio:
        model.lock_audio(cfg.encoders.audio_unlocked_blocks)
    if text is not None and cfg.encoders.lock_text:
        model.lock_text(cfg.encoders.text_unlocked_blocks)
    model.cfg = cfg
    return model


# -- checkpoints ------------------------------------------------------------------------------
def model_state(model: RetrievalModel) -> dict[str, Any]:
    """What a checkpoint keeps of the model: every tensor except those of frozen towers, and of a
    partly unlocked tower (``lock_text(n)`` / ``lock_audio(n)``) only the modules that train (their
    parameters and buffers); the frozen rest is rebuilt from the tower's source when loading, so a
    model that tunes the last block of a packaged tower ships that block, not the whole tower."""
    state = model.state_dict()
    drop: set[str] = set()
    for name, trained in model.trained_towers().items():
        tower = getattr(model, name)
        if tower is None:
            continue
        prefix = f"{name}."
        if not trained:
            drop.update(k for k in state if k.startswith(prefix))
        elif _partial(tower):
            keep = set()
            for path, mod in tower.named_modules():
                if any(p.requires_grad for p in mod.parameters(recurse=False)):
                    own = [n for n, _ in mod.named_parameters(recurse=False)] + [n for n, _ in mod.named_buffers(recurse=False)]
                    keep.update(f"{prefix}{path}.{n}" if path else f"{prefix}{n}" for n in own)
            drop.update(k for k in state if k.startswith(prefix) and k not in keep)
    return {k: v for k, v in state.items() if k not in drop}


def _partial(tower: nn.Module) -> bool:
    """True when some but not all parameters of the tower train."""
    flags = [p.requires_grad for p in tower.parameters()]
    return any(flags) and not all(flags)


def tower_sources(model: RetrievalModel) -> dict[str, dict[str, Any]]:
    """Per tower: whether its weights are in the checkpoint, and its ``config()`` (its source)."""
    out = {}
    for name, trained in model.trained_towers().items():
        tower = getattr(model, name)
        if tower is not None:
            out[name] = {"trained": trained, "partial": trained and _partial(tower), "source": _plain(tower.config())}
    return out


def checkpoint_payload(model: RetrievalModel) -> dict[str, Any]:
    """The model part of a checkpoint (see :mod:`soundseek.models.checkpoint`)."""
    if model.cfg is None:
        raise ValueError("the model has no recipe (build it with create_model)")
    dims = (model.scorer.audio_dim, model.scorer.text_dim)
    return {"config": to_dict(model.cfg), "audio_dim": dims[0], "text_dim": dims[1],
            "model": model_state(model), "towers": tower_sources(model)}


def model_from_checkpoint(ckpt: dict[str, Any], towers: bool | tuple[nn.Module, nn.Module] = True,
                          where: str = "checkpoint") -> RetrievalModel:
    """Rebuild a model from a loaded checkpoint dict (any version); ``towers`` as in
    :func:`create_model` (a given pair is used as is, e.g. the encoders that made a feature cache)."""
    cfg = from_dict(Config, ckpt["config"])
    check_head_shapes(cfg, ckpt, where)
    if towers is True:
        check_tower_shapes(cfg, ckpt, where)
    if towers is True and ckpt.get("version", 1) >= 2 and not ckpt.get("towers"):
        towers = False  # saved from a heads-only model (trained on features of unnamed encoders)
    model = create_model(cfg, int(ckpt["audio_dim"]), int(ckpt["text_dim"]), towers=towers)
    saved = ckpt.get("towers", {})
    for name in TOWERS:
        tower = getattr(model, name)
        if tower is None or name not in saved:
            continue
        if bool(saved[name]["trained"]) != model.trained_towers()[name]:
            raise ConfigError(f"{where}: {name} trained={saved[name]['trained']} does not match its recipe")
        rebuilt = not saved[name]["trained"] or saved[name].get("partial", False)
        if rebuilt and _plain(tower.config()) != saved[name]["source"]:
            log.warning("%s: the frozen %s built now (%s) differs from the one it was trained with (%s)",
                        where, name, tower.config(), saved[name]["source"])
    state = ckpt["model"]
    if towers is False:
        state = {k: v for k, v in state.items() if not k.startswith(tuple(f"{n}." for n in TOWERS))}
    missing, unexpected = model.load_state_dict(state, strict=False)
    required = set(model_state(model))
    missing = [k for k in missing if k in required]
    if missing or unexpected:
        raise ConfigError(f"{where} does not fit its recipe's model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def check_head_shapes(cfg: Config, ckpt: dict[str, Any], where: str = "checkpoint") -> None:
    """Refuse a checkpoint whose recipe describes heads other than the tensors it holds, before
    anything is allocated: the heads are built on the meta device (shapes, no memory) and every
    tensor they need must be in the file with that shape. So a damaged or hostile recipe (a
    width of millions, thousands of ensemble members) fails with an error instead of exhausting
    the machine; the file's own tensors bound what loading it allocates."""
    import torch

    try:
        audio_dim, text_dim = int(ckpt["audio_dim"]), int(ckpt["text_dim"])
        with torch.device("meta"):
            scorer, loss = build_heads(cfg, audio_dim, text_dim)
    except (ConfigError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{where}: its recipe does not build a model: {e}") from None
    saved = ckpt.get("model", {})
    for prefix, module in (("scorer.", scorer), ("loss.", loss)):
        for name, t in module.state_dict().items():
            have = saved.get(prefix + name)
            if not hasattr(have, "shape") or tuple(have.shape) != tuple(t.shape):
                got = "missing" if have is None else f"shape {tuple(getattr(have, 'shape', ()))}"
                raise ConfigError(f"{where} does not fit its recipe's model: {prefix + name} is {got}, "
                                  f"the recipe needs {tuple(t.shape)}")


def check_tower_shapes(cfg: Config, ckpt: dict[str, Any], where: str = "checkpoint") -> None:
    """Refuse, before allocating, an audio tower whose recipe sets its size (a random
    initialisation, see :func:`soundseek.encoders.builds_from_options`) beyond what the file
    holds: the tower is built on the meta device; every tensor the file stores for it must have
    the shape the recipe gives, a trained tower must be stored whole, and the part the file does
    not store may have at most :data:`MAX_UNSTORED_TOWER` elements. Towers loaded from weight
    files (aisfx, official checkpoints, Hugging Face directories) are bounded by those files."""
    import torch

    from soundseek.encoders import build_audio_encoder, builds_from_options

    enc = cfg.encoders
    if not builds_from_options(enc.audio, dict(enc.audio_options)):
        return
    try:
        with torch.device("meta"):
            tower = build_audio_encoder(enc.audio, **enc.audio_options)
    except (ConfigError, ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"{where}: its recipe does not build its audio encoder: {e}") from None
    info = ckpt.get("towers", {}).get("audio_encoder", {})
    whole = bool(info.get("trained")) and not info.get("partial", False)
    saved = ckpt.get("model", {})
    unstored = 0
    for name, t in tower.state_dict().items():
        have = saved.get(f"audio_encoder.{name}")
        if have is None:
            if whole:
                raise ConfigError(f"{where} does not fit its recipe's model: audio_encoder.{name} is missing, "
                                  f"the recipe needs {tuple(t.shape)}")
            unstored += t.numel()
        elif not hasattr(have, "shape") or tuple(have.shape) != tuple(t.shape):
            raise ConfigError(f"{where} does not fit its recipe's model: audio_encoder.{name} is shape "
                              f"{tuple(getattr(have, 'shape', ()))}, the recipe needs {tuple(t.shape)}")
    if unstored > MAX_UNSTORED_TOWER:
        raise ConfigError(f"{where}: its recipe's {enc.audio} audio encoder would have {unstored:,} randomly "
                          f"initialised elements not stored in the file (at most {MAX_UNSTORED_TOWER:,})")


def load_model(path: str | Path, towers: bool = True) -> RetrievalModel:
    """The model of a soundseek checkpoint (``weights_only`` loading); ``model.cfg`` is its
    recipe. ``towers=False`` skips building the encoders (heads only)."""
    return model_from_checkpoint(load_checkpoint(path), towers=towers, where=str(path))


def resolve(spec: str | Path | None) -> Path:
    """The checkpoint file a model spec names: ``"default"`` (or None/"") or a path."""
    if spec in (None, "", "default"):
        if not DEFAULT_CHECKPOINT.is_file():
            raise FileNotFoundError(
                f"The default model is not in this installation ({DEFAULT_CHECKPOINT.name}); "
                "rebuild it with `bash scripts/train_default_model.sh` or pass a checkpoint path"
            )
        return DEFAULT_CHECKPOINT
    return Path(spec)


def load(spec: str | Path | None = "default", towers: bool = True) -> RetrievalModel:
    """The one entry point from a model spec to a model: ``"default"``, a checkpoint path, or
    ``family:PATH`` — a pretrained model in a local directory (``soundseek.models.spec``, e.g.
    ``hf-clap:models/clap-htsat-unfused``), built by :func:`create_model` from its family's recipe."""
    from soundseek.models.spec import family_config, parse_model_spec

    if parse_model_spec(spec) is not None:
        cfg = family_config(str(spec))
        return create_model(cfg, cfg.model.embed_dim, cfg.model.embed_dim, towers=towers).eval()
    return load_model(resolve(spec), towers=towers)


def _plain(obj: Any) -> Any:
    """JSON-like copy (tuples -> lists) so that a saved and a rebuilt config compare equal."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
