"""Tiny whole models for tests: a small CNN audio tower and a tiny BERT written with
``save_pretrained`` (the official Hugging Face layout)."""
from __future__ import annotations

from pathlib import Path

import torch

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "barks", "rain", "falls", "loud", "door",
         "bell", "rings", "engine", "hum", "soft", "birds", "sing", "glass", "breaks"]


def tiny_bert_dir(root: Path, layers: int = 2, hidden: int = 16, seed: int = 0) -> Path:
    from transformers import BertConfig, BertModel, BertTokenizerFast

    model_dir = Path(root) / f"tiny-bert-{layers}x{hidden}"
    if (model_dir / "config.json").is_file():
        return model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    tok = BertTokenizerFast(vocab_file=str(model_dir / "vocab.txt"))
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(WORDS), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=2 * hidden, max_position_embeddings=64,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # deterministic in training
    BertModel(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return model_dir


def tiny_sets(root: Path) -> list[str]:
    """Overrides for a tiny model: small CNN audio tower (random init), tiny BERT text tower."""
    return [
        "encoders.audio=small_cnn", "encoders.audio_options={channels: 4, n_blocks: 2, out_dim: 8, dropout: 0.0}",
        "encoders.text=hf", f"encoders.text_path={tiny_bert_dir(root)}", "model.embed_dim=8",
        "model.options={pooling: meanmax}", "encoders.max_tokens=8",
    ]


def tiny_roberta_dir(root: Path, layers: int = 2, hidden: int = 16, seed: int = 0) -> Path:
    """A tiny RoBERTa (byte-level BPE tokenizer over single characters) in the HF layout."""
    import json

    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    model_dir = Path(root) / f"tiny-roberta-{layers}x{hidden}"
    if (model_dir / "config.json").is_file():
        return model_dir
    model_dir.mkdir(parents=True, exist_ok=True)
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])}
    for ch in "abcdefghijklmnopqrstuvwxyz\u0120":
        vocab[ch] = len(vocab)
    (model_dir / "vocab.json").write_text(json.dumps(vocab))
    (model_dir / "merges.txt").write_text("#version: 0.2\n")
    tok = RobertaTokenizerFast(vocab_file=str(model_dir / "vocab.json"), merges_file=str(model_dir / "merges.txt"))
    torch.manual_seed(seed)
    cfg = RobertaConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=2 * hidden, max_position_embeddings=80, pad_token_id=1,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    RobertaModel(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return model_dir
