"""HFTextEncoder: parity with sentence-transformers, tiny BERT from save_pretrained, errors."""
from __future__ import annotations

import pytest
import torch

from soundseek.encoders import TEXT_ENCODERS, build_text_encoder
from soundseek.encoders.text import HFTextEncoder

torch.set_num_threads(2)
CAPS = ["a dog barks twice in the distance", "rain", "footsteps on gravel while birds sing " * 6]


@pytest.fixture(scope="module")
def minilm():
    return HFTextEncoder.from_pretrained()


def test_mean_pooling_matches_sentence_transformers(minilm):
    st_mod = pytest.importorskip("sentence_transformers")
    path = str(minilm.model.name_or_path)
    full = st_mod.SentenceTransformer(path, device="cpu")
    st = st_mod.SentenceTransformer(modules=[full[0], full[1]], device="cpu")  # without Normalize
    st.max_seq_length = 32
    ref = st.encode(CAPS, convert_to_tensor=True)
    with torch.no_grad():
        out = minilm(CAPS)
    assert out.sentence.shape == (3, 384) and minilm.out_dim == 384
    assert out.mask.sum(1).max() == 32  # the long caption is cut at max_length
    assert (out.sentence - ref).abs().max() < 1e-5


def _tiny_bert_dir(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "dog", "barks", "rain", "falls", "loud"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=64)
    model_dir = tmp_path / "tiny-bert"
    BertModel(cfg).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    return model_dir


def test_tiny_bert_loads_and_pools(tmp_path):
    d = _tiny_bert_dir(tmp_path)
    mean = HFTextEncoder.from_pretrained(d, pooling="mean", max_length=8)
    cls = build_text_encoder("hf", path=d, pooling="cls", max_length=8)
    caps = ["a dog barks", "rain falls loud loud loud loud loud loud loud"]
    with torch.no_grad():
        m, c = mean(caps), cls(caps)
    assert m.tokens.shape == (2, 8, 16) and m.mask.tolist()[0] == [True] * 5 + [False] * 3
    for i in range(2):  # slow reference: per caption, no padding
        with torch.no_grad():
            alone = mean([caps[i]])
        assert torch.allclose(m.sentence[i], alone.tokens[0].mean(0), atol=1e-5)
    assert torch.equal(c.sentence, c.tokens[:, 0])
    assert mean.config() != cls.config() and mean.config()["weights"] == cls.config()["weights"]


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Text encoder directory not found"):
        HFTextEncoder.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        HFTextEncoder.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="Valid: mean, cls"):
        HFTextEncoder.from_pretrained(None, pooling="max")
    with pytest.raises(KeyError, match="Valid: hf, hf-clap, minilm"):
        TEXT_ENCODERS.get("bert")
