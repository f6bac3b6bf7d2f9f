"""Local Hugging Face directories load only when their config describes the weights they store:
a hostile config.json (a thousand layers over a one-layer checkpoint) is refused before anything
is built for real; shard indexes may not point outside the directory; a preprocessor_config.json
whose sizes would exhaust the machine (a 2^27-point FFT, a day-long input) is refused."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")

from hf_helpers import LAYOUTS, make_tiny_clap, write_tokenizer  # noqa: E402
from soundseek.encoders.hf_load import HFLoadError, load_local, stored_shapes  # noqa: E402


def _tiny_bert(path: Path, safe: bool = True, pooler: bool = True) -> Path:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=37, max_position_embeddings=40)
    BertModel(cfg, add_pooling_layer=pooler).eval().save_pretrained(str(path), safe_serialization=safe)
    write_tokenizer(path)
    return path


def _edit_config(path: Path, **change) -> None:
    cfg = json.loads((path / "config.json").read_text())
    for key, value in change.items():
        *outer, last = key.split(".")
        d = cfg
        for k in outer:
            d = d[k]
        d[last] = value
    (path / "config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "pytorch_model.bin"])
def test_a_config_asking_for_more_than_the_weights_is_refused(tmp_path, safe):
    from soundseek.encoders.text import HFTextEncoder

    p = _tiny_bert(tmp_path / "bert", safe=safe)
    enc = HFTextEncoder.from_pretrained(p)  # the honest directory loads ...
    assert sum(t.numel() for t in enc.model.parameters()) == sum(
        torch.Size(s).numel() for s in stored_shapes(p).values())
    _edit_config(p, num_hidden_layers=1000)  # ... 1000 x 8.6k elements over a 1-layer checkpoint does not
    with pytest.raises(HFLoadError, match="weights store"):
        HFTextEncoder.from_pretrained(p)
    _edit_config(p, num_hidden_layers=10_000_000)  # stopped while building on meta, not after
    with pytest.raises(HFLoadError, match="more than"):
        HFTextEncoder.from_pretrained(p)


def test_loaded_model_is_transformers_own(tmp_path):
    from transformers import AutoModel

    p = _tiny_bert(tmp_path / "bert", pooler=False)  # a missing pooler fits in the slack
    ours = load_local(AutoModel, p)
    ref = AutoModel.from_pretrained(str(p), local_files_only=True).eval()
    ids = torch.tensor([[0, 5, 9, 2]])
    assert type(ours) is type(ref)
    torch.testing.assert_close(ours.eval()(input_ids=ids).last_hidden_state, ref(input_ids=ids).last_hidden_state)


def test_shards_must_lie_inside_the_directory(tmp_path):
    from transformers import AutoModel

    p = _tiny_bert(tmp_path / "bert")
    (p / "model.safetensors").rename(tmp_path / "outside.safetensors")
    keys = list(json.loads((tmp_path / "outside.safetensors").read_bytes()[8:][:int.from_bytes(
        (tmp_path / "outside.safetensors").read_bytes()[:8], "little")]).keys() - {"__metadata__"})
    (p / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {k: "../outside.safetensors" for k in keys}}))
    with pytest.raises(HFLoadError, match="inside"):
        load_local(AutoModel, p)
    (p / "model.safetensors.index.json").write_text("[1, 2")
    with pytest.raises(HFLoadError, match="not a weight index"):
        load_local(AutoModel, p)


def test_unreadable_weights_are_one_clear_error(tmp_path):
    from transformers import AutoModel

    p = _tiny_bert(tmp_path / "bert")
    (p / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(HFLoadError, match="unreadable weights"):
        load_local(AutoModel, p)


def test_a_clap_config_with_extra_layers_is_refused(tmp_path):
    from soundseek.models.clap import load_clap

    p = make_tiny_clap(tmp_path / "clap")
    model, _ = load_clap(p)
    assert model.text_model.config.num_hidden_layers == 1
    _edit_config(p, **{"text_config.num_hidden_layers": 2000})
    with pytest.raises(HFLoadError, match="ClapModel"):
        load_clap(p)


def _edit_preprocessor(path: Path, **change) -> None:
    """Change the extractor settings save_pretrained wrote, in whichever layout it wrote them."""
    if (path / "processor_config.json").is_file():
        cfg = json.loads((path / "processor_config.json").read_text())
        cfg["feature_extractor"].update(change)
        (path / "processor_config.json").write_text(json.dumps(cfg))
    else:
        cfg = json.loads((path / "preprocessor_config.json").read_text())
        cfg.update(change)
        (path / "preprocessor_config.json").write_text(json.dumps(cfg))


@pytest.mark.parametrize("change, match", [
    ({"fft_window_size": 1 << 17}, "fft_window_size"),  # a 131,072-point mel bank: builds without the check
    ({"fft_window_size": 1 << 27}, "fft_window_size"),  # ~70 GB of mel filters
    ({"max_length_s": 86_400}, "max_length_s"),  # every clip padded to a day
    ({"hop_length": 1, "max_length_s": 600, "nb_max_samples": 600 * 48000}, "features would be"),
    ({"sampling_rate": 10}, "sampling_rate"),
    ({"feature_size": True}, "feature_size"),
    ({"feature_size": "64"}, "feature_size"),
])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_hostile_feature_extractor_settings_are_refused_before_building(tmp_path, change, match, layout):
    from soundseek.models.clap import load_clap

    p = make_tiny_clap(tmp_path / "clap", layout=layout)
    load_clap(p)
    _edit_preprocessor(p, **change)
    with pytest.raises(HFLoadError, match=match):
        load_clap(p)


@pytest.mark.parametrize("name", ["preprocessor_config.json", "processor_config.json"])
def test_preprocessor_file_must_be_a_small_json_object(tmp_path, name):
    from soundseek.encoders.hf_load import MAX_PREPROCESSOR_BYTES, load_feature_extractor_config

    f = tmp_path / name
    for text, match in (("[1, 2]", "JSON object"), ("{", "not JSON"),
                        (" " * (MAX_PREPROCESSOR_BYTES + 1) + "{}", "MiB")):
        f.write_text(text)
        with pytest.raises(HFLoadError, match=match):
            load_feature_extractor_config(tmp_path)
    whisper = {"sampling_rate": 16000, "n_fft": 400, "hop_length": 160, "feature_size": 80,
               "chunk_length": 30, "n_samples": 480000, "nb_max_frames": 3000}
    f.write_text(json.dumps({"feature_extractor": whisper} if name == "processor_config.json" else whisper))
    assert load_feature_extractor_config(tmp_path)["n_fft"] == 400
    if name == "processor_config.json":
        f.write_text(json.dumps({"feature_extractor": [1]}))
        with pytest.raises(HFLoadError, match="feature_extractor is not a JSON object"):
            load_feature_extractor_config(tmp_path)
        f.write_text(json.dumps({"processor_class": "X"}))  # no extractor inside: neither layout
        with pytest.raises(FileNotFoundError, match="no feature extractor settings"):
            load_feature_extractor_config(tmp_path)


@pytest.mark.parametrize("hostile", ["processor", "feature_extractor"])
def test_both_layouts_present_are_both_checked(tmp_path, hostile):
    """transformers 5 reads processor_config.json's extractor before preprocessor_config.json, older
    versions only the latter: a benign file beside a hostile one lets nothing through."""
    from transformers import ClapFeatureExtractor

    from soundseek.encoders.hf_load import feature_extractor_file
    from soundseek.models.clap import load_clap

    p = make_tiny_clap(tmp_path / "clap", layout="processor")
    fe = ClapFeatureExtractor.from_pretrained(str(p))
    if hostile == "feature_extractor":
        fe.fft_window_size = 1 << 17
    fe.save_pretrained(str(p))  # now both layouts
    assert feature_extractor_file(p).name == "processor_config.json"  # transformers' own preference
    if hostile == "processor":
        _edit_preprocessor(p, fft_window_size=1 << 17)
    where = r"processor_config.json \[feature_extractor\]" if hostile == "processor" else "preprocessor_config.json"
    with pytest.raises(HFLoadError, match=f"{where}: fft_window_size"):
        load_clap(p)
