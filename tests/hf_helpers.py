"""Tiny random Hugging Face models written in the official ``save_pretrained`` layout (no downloads)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

WORDS = ("a dog barks loudly in the distance while rain falls on metal roof car engine starts and "
         "idles birds sing water flows door slams bell rings people talk music plays wind blows").split()


def write_tokenizer(path: Path) -> None:
    """A RoBERTa-style word-level tokenizer (<s>=0, <pad>=1, </s>=2, <unk>=3) saved as tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for w in sorted(set(WORDS)):
        vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(str(path))


LAYOUTS = ("feature_extractor", "processor")


def save_feature_extractor(path: Path, fe, layout: str, tokenizer_dir: Path | None = None) -> None:
    """Save ``fe`` the way installed transformers does: ``layout="feature_extractor"`` is
    ``fe.save_pretrained`` (``preprocessor_config.json``); ``"processor"`` is the model's processor
    (feature extractor + tokenizer) ``save_pretrained`` (``processor_config.json`` since transformers 5),
    with the tokenizer of ``tokenizer_dir`` (default: :func:`write_tokenizer`'s)."""
    import transformers as tf

    if layout == "feature_extractor":
        fe.save_pretrained(str(path))
        assert (path / "preprocessor_config.json").is_file()
        return
    assert layout == "processor", layout
    if tokenizer_dir is None:
        tokenizer_dir = path.parent / f"{path.name}-tokenizer"
        write_tokenizer(tokenizer_dir)
    tok = tf.AutoTokenizer.from_pretrained(str(tokenizer_dir))
    proc = {"ClapFeatureExtractor": tf.ClapProcessor, "WhisperFeatureExtractor": tf.WhisperProcessor,
            "Wav2Vec2FeatureExtractor": tf.Wav2Vec2Processor}[type(fe).__name__]
    proc(feature_extractor=fe, tokenizer=tok).save_pretrained(str(path))
    assert (path / "processor_config.json").is_file() and not (path / "preprocessor_config.json").exists(), \
        "the installed transformers writes the processor layout differently"


def make_tiny_clap(path: Path, fusion: bool = False, seed: int = 0, max_length_s: float = 1,
                   layout: str = "feature_extractor") -> Path:
    """Save a tiny random ClapModel + ClapFeatureExtractor + tokenizer under ``path``: ``layout``
    ``"feature_extractor"`` saves the extractor and the tokenizer apart (``preprocessor_config.json``),
    ``"processor"`` saves them as one ``ClapProcessor`` (``processor_config.json``).

    64 mel bins and spec_size 128 (freq_ratio 2) fit a 1 s window at 48 kHz (101 frames <= 256).
    """
    from transformers import ClapAudioConfig, ClapConfig, ClapFeatureExtractor, ClapModel, ClapTextConfig

    torch.manual_seed(seed)
    text = ClapTextConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=32, max_position_embeddings=40, projection_dim=12)
    audio = ClapAudioConfig(spec_size=128, num_mel_bins=64, patch_size=4, patch_stride=4, window_size=4,
                            depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=8, hidden_size=16,
                            enable_fusion=fusion, projection_dim=12)
    cfg = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=12)
    model = ClapModel(cfg).eval()
    with torch.no_grad():  # BatchNorm statistics and logit scales that are not the defaults
        bn = model.audio_model.audio_encoder.batch_norm
        bn.running_mean.uniform_(-60, -20)
        bn.running_var.uniform_(50, 200)
        model.logit_scale_a.fill_(float(np.log(20.0)))
        model.logit_scale_t.fill_(float(np.log(30.0)))
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    fe = ClapFeatureExtractor(feature_size=64, sampling_rate=48000, hop_length=480, max_length_s=max_length_s,
                              fft_window_size=1024, truncation="fusion" if fusion else "rand_trunc",
                              padding="repeatpad", frequency_min=50, frequency_max=14000)
    save_feature_extractor(path, fe, layout)
    if layout == "feature_extractor":
        write_tokenizer(path)
    return path


def make_tiny_audio_model(path: Path, kind: str, seed: int = 0, layout: str = "feature_extractor", **over) -> Path:
    """A tiny random AST / wav2vec2 / HuBERT / WavLM / Whisper model + its feature extractor, saved
    (``layout``: see :func:`save_feature_extractor`; AST has no processor in transformers)."""
    import transformers as tf

    torch.manual_seed(seed)
    small = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    if kind == "ast":
        model = tf.ASTModel(tf.ASTConfig(**small, patch_size=16, frequency_stride=10, time_stride=10,
                                         max_length=100, num_mel_bins=32, **over))
        fe = tf.ASTFeatureExtractor(num_mel_bins=32, max_length=100)
    elif kind == "whisper":
        model = tf.WhisperModel(tf.WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2,
                                                 decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=32,
                                                 decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=50,
                                                 max_target_positions=16, vocab_size=64, pad_token_id=1, bos_token_id=2,
                                                 eos_token_id=2, decoder_start_token_id=3, **over))
        fe = tf.WhisperFeatureExtractor(feature_size=80, chunk_length=1)
    else:
        conv = dict(conv_dim=(8, 8, 8), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=8,
                    num_conv_pos_embedding_groups=2, **small)
        cfg_cls, model_cls = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model), "hubert": (tf.HubertConfig, tf.HubertModel),
                              "wavlm": (tf.WavLMConfig, tf.WavLMModel)}[kind]
        model = model_cls(cfg_cls(**conv, **over))
        fe = tf.Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, do_normalize=True,
                                         return_attention_mask=over.get("feat_extract_norm") == "layer")
    path.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(str(path))
    save_feature_extractor(path, fe, layout)
    return path


def tone(seconds: float, freq: float, sr: int = 48000, seed: int = 0) -> np.ndarray:
    g = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * g.standard_normal(t.size)).astype(np.float32)


__all__ = ["LAYOUTS", "make_tiny_audio_model", "make_tiny_clap", "save_feature_extractor", "write_tokenizer", "tone",
           "json"]
