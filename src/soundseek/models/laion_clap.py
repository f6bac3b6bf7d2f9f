"""Original LAION-CLAP checkpoints (``laion_clap`` package, e.g. ``630k-audioset-best.pt``) ->
the Hugging Face ``ClapModel`` layout, so that ``--model hf-clap:DIR`` loads them.

Source layout: ``{"state_dict": {...}, "epoch": ..., ...}`` (or a bare state dict), keys
usually prefixed ``module.`` (DDP). The key correspondence is the public one used by
transformers' conversion script; this implementation is our own:

* ``text_branch.*`` -> ``text_model.*`` (RoBERTa names unchanged);
* ``audio_branch.*`` -> ``audio_model.audio_encoder.*`` with, inside the Swin blocks,
  ``attn.qkv`` split in three equal row blocks -> ``attention.self.{query,key,value}``,
  ``attn.proj`` -> ``attention.output.dense``, other ``attn.*`` -> ``attention.self.*``,
  ``mlp.fc1`` -> ``intermediate.dense``, ``mlp.fc2`` -> ``output.dense``,
  ``norm1``/``norm2`` -> ``layernorm_before``/``layernorm_after``, ``bn0`` -> ``batch_norm``;
* ``{text,audio}_projection.0`` / ``.2`` (Sequential Linear-ReLU-Linear) -> ``.linear1`` / ``.linear2``;
* ``logit_scale_a``, ``logit_scale_t`` unchanged.

Not converted (not part of ``ClapModel``): the torchlibrosa front end
(``spectrogram_extractor``, ``logmel_extractor``), the HTSAT classification head
(``tscam_conv``, ``head``), the MLP-loss ``{text,audio}_transform``, and buffers that
transformers recomputes (``attn_mask``, ``relative_position_index``, ``position_ids``).
Any other key, any missing weight or any shape mismatch is an error: the given config does not
describe the checkpoint's architecture.

The source is read with ``torch.load(weights_only=True)`` (or safetensors); a pickle that needs
arbitrary Python objects is refused.
"""
from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import torch

IGNORED = re.compile(r"(^audio_branch\.(spectrogram_extractor|logmel_extractor|tscam_conv|head)\.)"
                     r"|(^(text|audio)_transform\.)|(\.attn_mask$)|(\.relative_position_index$)|(\.position_ids$)"
                     r"|(^text_branch\.embeddings\.token_type_ids$)")
RECOMPUTED = re.compile(r"(\.relative_position_index$)|(\.position_ids$)|(\.token_type_ids$)")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "added_tokens.json")


class UnsafeCheckpointError(ValueError):
    """The checkpoint is a pickle that would execute or import arbitrary Python objects."""


def read_laion_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of an original checkpoint, ``module.`` prefixes removed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint file {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, AttributeError) as e:
            if "weights_only" in str(e) or "Unsupported global" in str(e) or isinstance(e, pickle.UnpicklingError):
                raise UnsafeCheckpointError(
                    f"{path} is a pickle that needs arbitrary Python objects to load (it can run code), so it is "
                    "refused. Re-save its state_dict from a trusted environment: torch.save({'state_dict': "
                    "ckpt['state_dict']}, 'clean.pt') or safetensors.torch.save_file(...)") from None
            raise
        sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
        if not isinstance(sd, dict):
            raise ValueError(f"{path}: expected a dict with 'state_dict' (or a bare state dict), got {type(obj).__name__}")
    out = {}
    for k, v in sd.items():
        if torch.is_tensor(v):
            out[k[len("module."):] if k.startswith("module.") else k] = v
    if not out:
        raise ValueError(f"{path}: no tensors in the state dict")
    return out


def _audio_block_key(rest: str) -> str:
    """An ``audio_branch.`` key (without that prefix) -> its ``audio_encoder.`` name (qkv not yet split)."""
    if rest.startswith("bn0."):
        return "batch_norm." + rest[len("bn0."):]
    for old, new in ((".attn.proj.", ".attention.output.dense."), (".attn.", ".attention.self."),
                     (".mlp.fc1.", ".intermediate.dense."), (".mlp.fc2.", ".output.dense."),
                     (".norm1.", ".layernorm_before."), (".norm2.", ".layernorm_after.")):
        rest = rest.replace(old, new)
    return rest


def laion_to_hf(sd: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Map original keys to ``ClapModel`` keys. Returns (mapped, ignored keys, unknown keys)."""
    mapped: dict[str, torch.Tensor] = {}
    ignored, unknown = [], []
    for k, v in sd.items():
        if IGNORED.search(k):
            ignored.append(k)
        elif k in ("logit_scale_a", "logit_scale_t"):
            mapped[k] = v
        elif k.startswith("text_branch."):
            mapped["text_model." + k[len("text_branch."):]] = v
        elif k.startswith(("text_projection.", "audio_projection.")):
            head, idx, rest = k.split(".", 2)
            if idx not in ("0", "2"):
                unknown.append(k)
                continue
            mapped[f"{head}.linear{1 if idx == '0' else 2}.{rest}"] = v
        elif k.startswith("audio_branch."):
            new = "audio_model.audio_encoder." + _audio_block_key(k[len("audio_branch."):])
            if ".attention.self.qkv." in new:
                q, kk, vv = v.chunk(3, dim=0)
                for name, part in (("query", q), ("key", kk), ("value", vv)):
                    mapped[new.replace(".qkv.", f".{name}.")] = part.clone()
            else:
                mapped[new] = v
        else:
            unknown.append(k)
    return mapped, ignored, unknown


def _config_path(p: Path) -> Path:
    return p / "config.json" if p.is_dir() else p


def convert_laion_clap(src: str | Path, out_dir: str | Path, config: str | Path, tokenizer: str | Path,
                       preprocessor: str | Path | None = None) -> dict:
    """Write a Hugging Face CLAP directory (config, safetensors weights, preprocessor, tokenizer).

    Args:
        src: the original checkpoint (``.pt``/``.ckpt`` read weights-only, or ``.safetensors``).
        out_dir: the new directory (must not exist or be empty).
        config: a ``ClapConfig`` ``config.json`` (or its directory) describing the architecture
            (e.g. that of laion/clap-htsat-unfused for ``630k-audioset-best.pt``).
        tokenizer: a directory with the RoBERTa tokenizer files the text branch was trained with.
        preprocessor: ``preprocessor_config.json`` (or its directory); default: LAION's audio
            settings (48 kHz, 10 s, 64 mels, hop 480, window 1024, 50-14000 Hz) with
            ``truncation`` fusion / rand_trunc from the config's ``enable_fusion``.
    Returns:
        a report {"converted": n, "ignored": [...], "out": path}.
    """
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new output directory")
    cfg_file = _config_path(Path(config))
    if not cfg_file.is_file():
        raise FileNotFoundError(f"No CLAP config.json at {config}")
    tok_dir = Path(tokenizer)
    tok_files = [f for f in TOKENIZER_FILES if (tok_dir / f).is_file()]
    if not tok_dir.is_dir() or not tok_files:
        raise FileNotFoundError(f"No tokenizer files ({', '.join(TOKENIZER_FILES[:4])}, ...) in {tokenizer}")
    mapped, ignored, unknown = laion_to_hf(read_laion_state_dict(src))
    cfg = ClapConfig.from_json_file(str(cfg_file))
    model = ClapModel(cfg).eval()
    target = model.state_dict()
    missing = [k for k in target if k not in mapped and not RECOMPUTED.search(k)]
    extra = [k for k in mapped if k not in target] + unknown
    bad = [f"{k}: checkpoint {tuple(v.shape)} vs config {tuple(target[k].shape)}"
           for k, v in mapped.items() if k in target and v.shape != target[k].shape]
    if missing or extra or bad:
        lines = ([f"missing weights ({len(missing)}): {', '.join(missing[:8])}"] if missing else []) + \
                ([f"unexpected keys ({len(extra)}): {', '.join(extra[:8])}"] if extra else []) + \
                ([f"shape mismatches ({len(bad)}): {'; '.join(bad[:4])}"] if bad else [])
        raise ValueError(f"{src} does not match the architecture in {cfg_file}: " + " | ".join(lines))
    model.load_state_dict({k: v for k, v in mapped.items() if k in target}, strict=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    if preprocessor is not None:
        pp = Path(preprocessor) / "preprocessor_config.json" if Path(preprocessor).is_dir() else Path(preprocessor)
        if not pp.is_file():
            raise FileNotFoundError(f"No preprocessor_config.json at {preprocessor}")
        shutil.copyfile(pp, out / "preprocessor_config.json")
    else:
        fusion = bool(cfg.audio_config.enable_fusion)
        ClapFeatureExtractor(feature_size=int(cfg.audio_config.num_mel_bins), sampling_rate=48000, hop_length=480,
                             max_length_s=10, fft_window_size=1024, frequency_min=50, frequency_max=14000,
                             truncation="fusion" if fusion else "rand_trunc", padding="repeatpad"
                             ).save_pretrained(str(out))
    for f in tok_files:
        shutil.copyfile(tok_dir / f, out / f)
    report = {"converted": len(mapped), "ignored": ignored, "out": str(out)}
    (out / "soundseek-conversion.json").write_text(json.dumps({"source": Path(src).name, **report}, indent=1))
    return report
