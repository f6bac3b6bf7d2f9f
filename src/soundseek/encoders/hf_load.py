"""Loading a Hugging Face model from a local directory, bounded by what the directory stores.

A model directory holds ``config.json`` and weights. ``from_pretrained`` builds the model the
config describes and randomly initialises whatever the weights do not hold, so a config asking
for 100,000 layers over a one-layer checkpoint takes minutes and gigabytes (3,000 tiny BERT
layers: 8 s, 0.27 GB) before any check. :func:`load_local` first reads the stored tensors' shapes (the safetensors headers; a
``.bin`` through ``torch.load(mmap=True, weights_only=True)``, which reads no data), builds the
model on the meta device under a budget of that many elements, and refuses a model that holds
more than :data:`SLACK` beyond what is stored (a pretrained model is its weights: a missing
pooler or position-id buffer fits in the slack, a thousand missing layers do not). Only then
does transformers load it for real. Shard index files may name only files inside the directory.

A feature extractor's settings are checked the same way before one is built from them
(:func:`load_feature_extractor`): building one computes its mel filter bank, and running it pads
every clip to its input length, so an FFT of 2^27 points or an input of a day would exhaust the
machine at load or at the first clip. Sizes must lie in :data:`PREPROCESSOR_LIMITS` and one
clip's features (input frames x mel bins) in :data:`MAX_FEATURE_ELEMENTS`. The settings are read
from where transformers reads them (:func:`feature_extractor_file`): the ``feature_extractor``
(or ``audio_processor``) entry of ``processor_config.json`` — what ``ProcessorMixin.save_pretrained``
writes since transformers 5 — else ``preprocessor_config.json`` (``FeatureExtractionMixin.save_pretrained``,
and the hub repositories saved by older versions).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["load_local", "load_feature_extractor", "load_feature_extractor_config", "feature_extractor_file",
           "stored_shapes", "SLACK", "PREPROCESSOR_LIMITS", "MAX_FEATURE_ELEMENTS", "HFLoadError",
           "FEATURE_EXTRACTOR_LAYOUTS"]

SLACK = (1 << 22, 0.10)  # elements a model may hold beyond its weights: 4 Mi, or 10 % of them
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
TORCH_BIN = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# (low, high) of the feature extractors' size settings (CLAP, AST, Whisper, wav2vec2 names); the
# published models use 16-48 kHz, FFTs of 400-1024, 64-128 mel bins and 10-30 s inputs
PREPROCESSOR_LIMITS = {
    "sampling_rate": (1000, 768_000), "fft_window_size": (16, 1 << 16), "n_fft": (16, 1 << 16),
    "hop_length": (1, 1 << 16), "feature_size": (1, 2048), "num_mel_bins": (1, 2048),
    "max_length_s": (0.01, 600), "chunk_length": (0.01, 600), "nb_max_samples": (1, 600 * 768_000),
    "n_samples": (1, 600 * 768_000), "max_length": (1, 1 << 17), "nb_max_frames": (1, 1 << 17),
}
MAX_FEATURE_ELEMENTS = 1 << 26  # one clip's input features (frames x mel bins): 256 MiB of float32
MAX_PREPROCESSOR_BYTES = 16 << 20  # the published ones are a few hundred bytes


class HFLoadError(ValueError):
    """A local model directory whose config and weights do not describe the same model."""


def _weight_files(path: Path) -> list[Path]:
    for single, index in (SAFETENSORS, TORCH_BIN):
        if (path / single).is_file():
            return [path / single]
        if (path / index).is_file():
            try:
                names = set(json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                raise HFLoadError(f"{path / index}: not a weight index ({e})") from None
            files = []
            for n in sorted(names):
                f = path / str(n)
                if Path(str(n)).name != str(n) or not f.is_file():
                    raise HFLoadError(f"{path / index} names {str(n)!r}: shards must be files inside {path}")
                files.append(f)
            return files
    raise FileNotFoundError(f"{path} has no weights ({', '.join(SAFETENSORS + TORCH_BIN)})")


def stored_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the directory's weights store, without reading their data."""
    out: dict[str, tuple[int, ...]] = {}
    for f in _weight_files(Path(path)):
        try:
            if f.suffix == ".safetensors":
                from safetensors import safe_open

                with safe_open(str(f), framework="pt") as st:
                    for k in st.keys():
                        out[k] = tuple(st.get_slice(k).get_shape())
            else:
                sd = torch.load(str(f), map_location="cpu", weights_only=True, mmap=True)
                if not isinstance(sd, dict):
                    raise HFLoadError(f"{f}: not a state dict")
                out.update({str(k): tuple(v.shape) for k, v in sd.items() if isinstance(v, torch.Tensor)})
        except HFLoadError:
            raise
        except Exception as e:  # noqa: BLE001 - any unreadable file is one clear error
            lines = [x.strip() for x in str(e).splitlines() if x.strip()]
            why = next((x for x in lines if "Unsupported global" in x), None)  # torch's advice to load
            if why is not None or "weights_only" in str(e):  # with weights_only=False is not repeated
                raise HFLoadError(f"{f}: refused: loading it would run code or needs objects other than "
                                  f"tensors ({why or 'not a plain tensor file'})") from None
            raise HFLoadError(f"{f}: unreadable weights ({type(e).__name__}: {lines[0] if lines else ''})") from None
    return out


class _Budget(TorchFunctionMode):
    """Counts the elements of tensors made while a model is built; stops past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit, self.made = limit, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.device.type == "meta":
            self.made += out.numel()
            if self.made > self.limit:
                raise _OverBudget
        return out


class _OverBudget(Exception):
    pass


def _held(model: torch.nn.Module) -> int:
    seen, n = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            n += t.numel()
    return n


def check_config_fits_weights(cls, path: Path, config=None) -> None:
    """Raise :class:`HFLoadError` if ``cls`` built from the directory's config would hold more than
    its weights store plus :data:`SLACK` (built on the meta device, stopped as soon as it does)."""
    shapes = stored_shapes(path)
    stored = sum(int(torch.Size(s).numel()) for s in shapes.values())
    allowed = stored + max(SLACK[0], int(SLACK[1] * stored))
    if config is None:
        config = cls.config_class.from_pretrained(str(path), local_files_only=True)
    budget = _Budget(4 * allowed)  # initialisers make temporaries on meta too; they cost nothing
    try:
        with torch.device("meta"), budget:
            model = cls(config)
    except _OverBudget:
        held = None
    else:
        held = _held(model)
        del model
    if held is None or held > allowed:
        what = "more than " + f"{4 * allowed:,}" if held is None else f"{held:,}"
        raise HFLoadError(
            f"{path}: config.json describes a {cls.__name__} of {what} elements, but its weights store "
            f"{stored:,} in {len(shapes)} tensors; a pretrained model must store its weights "
            "(is config.json from another model?)")


def load_local(cls, path: str | Path, **kw):
    """``cls.from_pretrained(path, local_files_only=True)`` once :func:`check_config_fits_weights`
    holds, with transformers' expected load notes and its per-load progress bar silenced."""
    from transformers.utils import logging as hf_logging

    path = Path(path)
    if getattr(cls, "config_class", None) is None and hasattr(cls, "_model_mapping"):  # AutoModel & co.
        from transformers import AutoConfig

        cls = cls._model_mapping[type(AutoConfig.from_pretrained(str(path), local_files_only=True))]
    check_config_fits_weights(cls, path)
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(n) for n in ("transformers.modeling_utils",
                                              "transformers.distributed.tensor_parallel")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        return cls.from_pretrained(str(path), local_files_only=True, **kw)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bar:
            hf_logging.enable_progress_bar()


PREPROCESSOR_NAME, PROCESSOR_NAME = "preprocessor_config.json", "processor_config.json"
FEATURE_EXTRACTOR_LAYOUTS = (f"{PREPROCESSOR_NAME}, or {PROCESSOR_NAME} with a feature_extractor entry "
                             "(the layouts save_pretrained writes)")
_NESTED_KEYS = ("feature_extractor", "audio_processor")  # transformers' own order


def _small_json_object(f: Path) -> dict:
    with open(f, "rb") as fh:
        raw = fh.read(MAX_PREPROCESSOR_BYTES + 1)
    if len(raw) > MAX_PREPROCESSOR_BYTES:
        raise HFLoadError(f"{f}: over {MAX_PREPROCESSOR_BYTES >> 20} MiB; not a feature extractor's settings")
    try:
        cfg = json.loads(raw)
    except ValueError as e:
        raise HFLoadError(f"{f}: not JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise HFLoadError(f"{f}: not a JSON object")
    return cfg


def _candidates(path: Path) -> list[tuple[dict, Path, str]]:
    """Every feature extractor setting the directory holds, as (settings, file, label), in the order
    transformers' ``FeatureExtractionMixin.from_pretrained`` prefers them (versions before 5 read
    only ``preprocessor_config.json``)."""
    out = []
    proc = path / PROCESSOR_NAME
    if proc.is_file():
        cfg = _small_json_object(proc)
        for key in _NESTED_KEYS:
            if key in cfg:
                if not isinstance(cfg[key], dict):
                    raise HFLoadError(f"{proc}: {key} is not a JSON object")
                out.append((cfg[key], proc, f"{proc} [{key}]"))
                break
    pre = path / PREPROCESSOR_NAME
    if pre.is_file():
        out.append((_small_json_object(pre), pre, str(pre)))
    return out


def feature_extractor_file(path: str | Path) -> Path | None:
    """The file of a local directory that holds its feature extractor's settings, as transformers'
    ``FeatureExtractionMixin.from_pretrained`` picks it (``processor_config.json`` when it nests a
    ``feature_extractor`` / ``audio_processor`` entry, else ``preprocessor_config.json``), or None."""
    got = _candidates(Path(path))
    return got[0][1] if got else None


def _check_sizes(cfg: dict, f: str) -> None:
    for key, (lo, hi) in PREPROCESSOR_LIMITS.items():
        v = cfg.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise HFLoadError(f"{f}: {key}={v!r} is outside {lo}..{hi}")
    sr = cfg.get("sampling_rate") or 16000
    seconds = max(cfg.get("max_length_s") or 0, cfg.get("chunk_length") or 0,
                  (cfg.get("nb_max_samples") or cfg.get("n_samples") or 0) / sr)
    frames = max(seconds * sr / (cfg.get("hop_length") or 160), cfg.get("max_length") or 0,
                 cfg.get("nb_max_frames") or 0)
    mels = max(cfg.get("feature_size") or 1, cfg.get("num_mel_bins") or 1)
    if frames * mels * 4 > MAX_FEATURE_ELEMENTS:  # x4: CLAP's fusion input stacks four views
        raise HFLoadError(f"{f}: one clip's features would be {int(frames):,} frames x {mels} bins "
                          f"(x4 views at most), over {MAX_FEATURE_ELEMENTS:,} elements")


def load_feature_extractor_config(path: str | Path) -> dict:
    """The feature extractor settings of a local directory (from the file :func:`feature_extractor_file`
    names), once their sizes — and those of every other layout the directory holds, which another
    transformers version would read instead — are within bounds.

    Raises:
        FileNotFoundError: neither layout is there.
        HFLoadError: too large a file, not a JSON object, a size outside :data:`PREPROCESSOR_LIMITS`,
            or features of one clip over :data:`MAX_FEATURE_ELEMENTS`.
    """
    got = _candidates(Path(path))
    if not got:
        raise FileNotFoundError(f"{path} has no feature extractor settings ({FEATURE_EXTRACTOR_LAYOUTS})")
    for cfg, _, label in got:
        _check_sizes(cfg, label)
    return got[0][0]


def load_feature_extractor(cls, path: str | Path):
    """``cls.from_pretrained(path, local_files_only=True)`` once :func:`load_feature_extractor_config` holds."""
    load_feature_extractor_config(path)
    return cls.from_pretrained(str(path), local_files_only=True)


def require_local_dir(path: str | Path, family: str, hint: str) -> Path:
    """The local directory of a pretrained model, or a FileNotFoundError saying where to put it.

    Hub ids (``laion/clap-htsat-unfused``) are never resolved: soundseek does not download.
    """
    p = Path(path).expanduser()
    if p.is_dir() and (p / "config.json").is_file():
        return p
    if p.is_dir():
        raise FileNotFoundError(f"{p} has no config.json: not a Hugging Face model directory ({hint})")
    looks_like_id = not p.is_absolute() and len(p.parts) == 2 and not str(path).startswith(".")
    where = (f"{path!r} looks like a Hugging Face hub id; soundseek never downloads. Download it yourself "
             f"(e.g. `huggingface-cli download {path} --local-dir models/{p.name}`) and pass "
             f"--model {family}:models/{p.name}" if looks_like_id else f"no directory {str(p)!r}")
    raise FileNotFoundError(f"{family}: {where}. The directory must hold {hint}.")
