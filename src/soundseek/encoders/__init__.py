"""Audio and text encoders (METHODS §3) and the frozen-feature cache.

Registries map names to constructors that load weights explicitly (never in ``__init__``,
never from a hub)::

    build_audio_encoder("aisfx")                                  # packaged aisfx CNN (offline default)
    build_audio_encoder("cnn14", path="Cnn14_mAP=0.431.pth")      # official PANNs checkpoint
    build_audio_encoder("passt", path="passt-s-f128-p16-s10-ap.476-swa.pt")  # official PaSST-S
    build_audio_encoder("atst", path="atstframe_base.ckpt")        # official ATST-Frame (base)
    build_audio_encoder("small_cnn", out_dim=256)                 # random init, trainable
    build_audio_encoder("hf-clap", path="models/clap-htsat-unfused")  # CLAP audio tower (frame level)
    build_audio_encoder("hf-ast", path="models/ast")                # also hf-wav2vec2/-hubert/-wavlm/-whisper
    build_text_encoder("hf", path=None, pooling="mean")           # all-MiniLM-L6-v2 from its wheel
    build_text_encoder("hf-clap", path="models/clap-htsat-unfused")   # CLAP text tower + projection
"""
from __future__ import annotations

from soundseek.registry import Registry

AUDIO_ENCODERS: Registry = Registry("audio encoder")
TEXT_ENCODERS: Registry = Registry("text encoder")


def _aisfx(path=None, frontend: str = "essentia", strict: bool = True):
    from soundseek.encoders.aisfx import AisfxEncoder

    return AisfxEncoder.from_pretrained(path, frontend=frontend, strict=strict)


def _panns(cls_name: str):
    def build(path=None, strict: bool = True, check_frontend: bool = True, pretrained: bool = True):
        from soundseek.encoders import panns

        cls = getattr(panns, cls_name)
        if not pretrained:
            return cls()
        if path is None:
            from soundseek.config import ConfigError

            raise ConfigError(f"{cls_name} needs path= to a local official checkpoint (weights are never "
                              "downloaded); pass pretrained=False for random weights")
        return cls.from_pretrained(path, strict=strict, check_frontend=check_frontend)

    return build


def _passt(path=None, strict: bool = True, pretrained: bool = True, **kw):
    from soundseek.encoders.passt import PaSST

    if not pretrained:
        return PaSST(**kw)
    if path is None:
        from soundseek.config import ConfigError

        raise ConfigError("passt needs path= to a local official checkpoint (e.g. passt-s-f128-p16-s10-ap.476-swa.pt; "
                          "weights are never downloaded); pass pretrained=False for random weights")
    return PaSST.from_pretrained(path, strict=strict, **kw)


def _atst(path=None, strict: bool = True, pretrained: bool = True, **kw):
    from soundseek.encoders.atst import ATSTFrame

    if not pretrained:
        return ATSTFrame(**kw)
    if path is None:
        from soundseek.config import ConfigError

        raise ConfigError("atst needs path= to a local official checkpoint (e.g. atstframe_base.ckpt; "
                          "weights are never downloaded); pass pretrained=False for random weights")
    return ATSTFrame.from_pretrained(path, strict=strict, **kw)


def _small_cnn(**kw):
    from soundseek.encoders.small_cnn import SmallCNN

    return SmallCNN(**kw)


def _hf_clap_audio(path=None, output: str = "frames", project: bool = True, trainable: bool = True,
                   window_batch: int = 16):
    from soundseek.encoders.clap import ClapAudioEncoder

    if path is None:
        from soundseek.config import ConfigError

        raise ConfigError("hf-clap needs path= a local Hugging Face ClapModel directory (never downloaded)")
    return ClapAudioEncoder.from_pretrained(path, output=output, project=project, trainable=trainable,
                                            window_batch=window_batch)


def _hf_audio(family: str):
    def build(path=None, trainable: bool = True):
        from soundseek.encoders import hf_audio

        return hf_audio.build(family, path=path, trainable=trainable)

    return build


def _hf_clap_text(path=None, pooling: str = "mean", max_length: int = 77, project_tokens: bool = True,
                  trainable: bool = True, frozen: bool = False):
    """CLAP text tower; its sentence vector is always CLAP's projected pooled token (``pooling``
    and ``frozen`` are accepted for the common text-encoder signature and do not apply)."""
    from soundseek.encoders.clap import ClapTextEncoder

    if path is None:
        from soundseek.config import ConfigError

        raise ConfigError("hf-clap needs a text path: a local Hugging Face ClapModel directory (never downloaded)")
    return ClapTextEncoder.from_pretrained(path, max_length=max_length, project_tokens=project_tokens,
                                           trainable=trainable)


def _hf_text(path=None, pooling: str = "mean", max_length: int = 32, frozen: bool = False):
    from soundseek.encoders.text import HFTextEncoder

    return HFTextEncoder.from_pretrained(path, pooling=pooling, max_length=max_length, frozen=frozen)


AUDIO_ENCODERS.add("aisfx", _aisfx)
AUDIO_ENCODERS.add("cnn14", _panns("Cnn14"))
AUDIO_ENCODERS.add("resnet38", _panns("ResNet38"))
AUDIO_ENCODERS.add("passt", _passt)
AUDIO_ENCODERS.add("atst", _atst)
AUDIO_ENCODERS.add("small_cnn", _small_cnn)
AUDIO_ENCODERS.add("hf-clap", _hf_clap_audio)
for _family in ("hf-ast", "hf-hubert", "hf-wav2vec2", "hf-wavlm", "hf-whisper"):
    AUDIO_ENCODERS.add(_family, _hf_audio(_family))
TEXT_ENCODERS.add("hf", _hf_text)
TEXT_ENCODERS.add("hf-clap", _hf_clap_text)
TEXT_ENCODERS.add("minilm", _hf_text)


_RANDOM_UNLESS_PRETRAINED = ("cnn14", "resnet38", "passt", "atst")


def builds_from_options(name: str, options: dict) -> bool:
    """True when audio encoder ``name`` with ``options`` gets its weights from its options alone
    (random initialisation: ``small_cnn``, or ``pretrained: false``) rather than from a weight
    file. Its size is then whatever the options say, so a checkpoint loader builds it on the
    meta device and checks it before allocating (:func:`soundseek.models.factory.check_tower_shapes`)."""
    if name == "small_cnn":
        return True
    return name in _RANDOM_UNLESS_PRETRAINED and options.get("pretrained", True) is False


def build_audio_encoder(name: str, **kw):
    """Build a registered audio encoder (names: ``AUDIO_ENCODERS.names()``)."""
    return AUDIO_ENCODERS.get(name)(**kw)


def build_text_encoder(name: str, **kw):
    """Build a registered text encoder (hf, minilm: a local Hugging Face encoder; hf-clap: CLAP's text tower)."""
    return TEXT_ENCODERS.get(name)(**kw)


__all__ = ["AUDIO_ENCODERS", "TEXT_ENCODERS", "build_audio_encoder", "build_text_encoder", "builds_from_options"]
