"""Inference-only forward of a frozen BERT-family text encoder, without importing transformers.

Importing ``transformers`` and its BERT module costs a one-off query several seconds, more than
the rest of a cold ``soundseek search`` together. A frozen tower needs only the forward pass of
``BertModel`` in eval mode (no dropout, no gradients), which is a few tensor operations, and
the tokenizer, which the ``tokenizers`` library (the Rust core of transformers' fast
tokenizers) reads from the directory's own ``tokenizer.json``. :class:`FrozenBert` has the state
dict layout of ``transformers.BertModel`` and is tested against transformers' own forward.

Used by :class:`soundseek.encoders.text.HFTextEncoder` for a frozen tower when
:func:`supported` holds (``model_type`` "bert" with absolute positions and GELU, weights in
``model.safetensors``, a ``tokenizer.json``); everything else, and every trained tower, goes
through transformers. Its parameters are frozen and named after ``BertModel``'s state dict
(dots as ``__``), so a frozen tower is left out of checkpoints as any frozen tower is.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

_ACTS = {"gelu": F.gelu}


def _config(path: Path) -> dict | None:
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg if isinstance(cfg, dict) else None


def supported(path: Path) -> bool:
    """True when the directory holds a BERT encoder this module runs exactly as transformers does."""
    cfg = _config(path)
    if cfg is None or cfg.get("model_type") != "bert":
        return False
    if cfg.get("position_embedding_type", "absolute") != "absolute" or cfg.get("hidden_act", "gelu") not in _ACTS:
        return False
    if cfg.get("is_decoder") or cfg.get("add_cross_attention"):
        return False
    need = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
            "max_position_embeddings")
    if not all(isinstance(cfg.get(k), int) and cfg[k] > 0 for k in need):
        return False
    if cfg["hidden_size"] % cfg["num_attention_heads"]:
        return False
    return (path / "model.safetensors").is_file() and (path / "tokenizer.json").is_file()


def expected_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every tensor of ``BertModel``'s encoder (the pooler is not used) and its shape under ``cfg``."""
    d, inter = int(cfg["hidden_size"]), int(cfg["intermediate_size"])
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (int(cfg["vocab_size"]), d),
        "embeddings.position_embeddings.weight": (int(cfg["max_position_embeddings"]), d),
        "embeddings.token_type_embeddings.weight": (int(cfg.get("type_vocab_size", 2)), d),
        "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,),
    }
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + n + ".weight"], shapes[p + n + ".bias"] = (d, d), (d,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (inter, d), (inter,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (d, inter), (d,)
        for n in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + n + ".weight"], shapes[p + n + ".bias"] = (d,), (d,)
    return shapes


class FrozenBert(nn.Module):
    """``BertModel``'s eval-mode forward: ``model(input_ids, attention_mask, token_type_ids)``
    returns an object with ``last_hidden_state`` (B, L, D); ``config.hidden_size`` as in
    transformers; parameters named as in ``BertModel.state_dict()`` (without the pooler)."""

    def __init__(self, cfg: dict, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self.config = SimpleNamespace(hidden_size=int(cfg["hidden_size"]), model_type="bert")
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.act = _ACTS[cfg.get("hidden_act", "gelu")]
        self.w = dict(state)  # flat view for the forward; the same tensors as the parameters
        for key, t in state.items():
            self.register_parameter(key.replace(".", "__"), nn.Parameter(t, requires_grad=False))

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "FrozenBert":
        """Weights from ``model.safetensors`` (no code runs). Every tensor the config needs must be
        in the file with the config's shape (checked on the file's header before anything is
        read), so the file bounds what loading allocates."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        cfg = _config(path)
        if cfg is None:
            raise ValueError(f"{path}/config.json is not a JSON object")
        want = expected_shapes(cfg)
        weights = path / "model.safetensors"
        with safe_open(str(weights), framework="pt") as f:
            names = {k.removeprefix("bert."): k for k in f.keys()}
            for k, shape in want.items():
                have = tuple(f.get_slice(names[k]).get_shape()) if k in names else None
                if have != shape:
                    got = "missing" if have is None else f"shape {have}"
                    raise ValueError(f"{weights} does not fit its config.json: {k} is {got}, the config needs {shape}")
        state = load_file(str(weights))
        return cls(cfg, {k: state[names[k]].float() for k in want}).eval()

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.linear(x, self.w[name + ".weight"], self.w[name + ".bias"])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def _apply(self, fn, recurse: bool = True):  # .to(device) / .half(): keep the flat view on the moved tensors
        out = super()._apply(fn, recurse)
        self.w = {k.replace("__", "."): p for k, p in self._parameters.items()}
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> SimpleNamespace:
        b, length = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        w = self.w
        pos = torch.arange(length, device=input_ids.device)
        x = (F.embedding(input_ids, w["embeddings.word_embeddings.weight"])
             + F.embedding(token_type_ids, w["embeddings.token_type_embeddings.weight"])
             + F.embedding(pos, w["embeddings.position_embeddings.weight"])[None])
        x = self._norm(x, "embeddings.LayerNorm")
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L): the keys a token may attend to
        d = x.shape[-1]
        dh = d // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, D/H)
            return t.view(b, length, self.heads, dh).transpose(1, 2)

        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            q, k, v = (split(self._linear(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, scale=1.0 / math.sqrt(dh))
            ctx = ctx.transpose(1, 2).reshape(b, length, d)
            x = self._norm(x + self._linear(ctx, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = self._linear(self.act(self._linear(x, p + "intermediate.dense")), p + "output.dense")
            x = self._norm(x + h, p + "output.LayerNorm")
        return SimpleNamespace(last_hidden_state=x)


class FastTokenizer:
    """The directory's ``tokenizer.json`` through the ``tokenizers`` library, called like a
    transformers tokenizer with ``padding=True, truncation=True, max_length=N, return_tensors="pt"``."""

    def __init__(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        path = Path(path)
        self.tok = Tokenizer.from_file(str(path / "tokenizer.json"))
        pad = "[PAD]"
        try:
            pad = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8")).get("pad_token", pad)
            if isinstance(pad, dict):  # AddedToken serialisation
                pad = pad.get("content", "[PAD]")
        except (OSError, ValueError, AttributeError):
            pass
        pad_id = self.tok.token_to_id(str(pad))
        self.pad = (str(pad), 0 if pad_id is None else int(pad_id))

    def __call__(self, captions: Sequence[str], padding: bool = True, truncation: bool = True,
                 max_length: int = 512, return_tensors: str = "pt") -> dict[str, torch.Tensor]:
        tok = self.tok
        tok.enable_truncation(max_length=int(max_length)) if truncation else tok.no_truncation()
        tok.enable_padding(pad_id=self.pad[1], pad_token=self.pad[0]) if padding else tok.no_padding()
        enc = tok.encode_batch(list(captions))
        return {"input_ids": torch.tensor([e.ids for e in enc], dtype=torch.long),
                "attention_mask": torch.tensor([e.attention_mask for e in enc], dtype=torch.long),
                "token_type_ids": torch.tensor([e.type_ids for e in enc], dtype=torch.long)}
