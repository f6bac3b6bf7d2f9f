"""``soundseek convert laion-clap``: an original-layout checkpoint, written here from a tiny random
ClapModel by the inverse key mapping, converts back to embeddings equal to the direct model's."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch

from hf_helpers import make_tiny_clap, tone


def hf_to_laion(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of the published LAION -> transformers key mapping (original ``laion_clap`` names)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if re.search(r"(position_ids|token_type_ids|relative_position_index)$", k):
            continue
        if k.startswith("text_model."):
            out["text_branch." + k[len("text_model."):]] = v
        elif k.startswith(("text_projection.", "audio_projection.")):
            out[k.replace(".linear1.", ".0.").replace(".linear2.", ".2.")] = v
        elif k.startswith("audio_model.audio_encoder."):
            r = k[len("audio_model.audio_encoder."):]
            r = r.replace("batch_norm.", "bn0.") if r.startswith("batch_norm.") else r
            r = (r.replace(".attention.output.dense.", ".attn.proj.").replace(".attention.self.", ".attn.")
                 .replace(".intermediate.dense.", ".mlp.fc1.").replace(".output.dense.", ".mlp.fc2.")
                 .replace(".layernorm_before.", ".norm1.").replace(".layernorm_after.", ".norm2."))
            if ".attn.query." in r:
                stem = k.replace(".query.", ".{}.")
                out["audio_branch." + r.replace(".attn.query.", ".attn.qkv.")] = torch.cat(
                    [sd[stem.format(n)] for n in ("query", "key", "value")])
            elif ".attn.key." in r or ".attn.value." in r:
                continue
            else:
                out["audio_branch." + r] = v
        else:
            out[k] = v  # logit_scale_a / logit_scale_t
    # parts of the original model that ClapModel does not have
    out["audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(3, 1, 4)
    out["audio_branch.logmel_extractor.melW"] = torch.zeros(4, 2)
    out["audio_branch.tscam_conv.weight"] = torch.zeros(2, 2, 3, 1)
    out["audio_branch.head.weight"] = torch.zeros(2, 2)
    out["text_transform.sequential.0.weight"] = torch.zeros(2, 2)
    out["audio_branch.layers.0.blocks.1.attn_mask"] = torch.zeros(2, 2)
    return {"module." + k: v.clone() for k, v in out.items()}


@pytest.mark.parametrize("fusion", [False, True], ids=["unfused", "fused"])
def test_converted_checkpoint_equals_direct_model(tmp_path, fusion, capsys):
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    from soundseek.cli.main import main
    from soundseek.pipeline import Pipeline

    ref_dir = make_tiny_clap(tmp_path / "hf", fusion=fusion, seed=3)
    ref = ClapModel.from_pretrained(str(ref_dir), local_files_only=True).eval()
    src = tmp_path / "630k-audioset-best.pt"
    torch.save({"epoch": 45, "state_dict": hf_to_laion(ref.state_dict())}, src)
    out = tmp_path / "converted"
    assert main(["convert", "laion-clap", str(src), str(out), "--config", str(ref_dir), "--tokenizer", str(ref_dir),
                 "--preprocessor", str(ref_dir)]) == 0
    assert "converted" in capsys.readouterr().err
    conv = ClapModel.from_pretrained(str(out), local_files_only=True).eval()
    for k, v in ref.state_dict().items():
        assert torch.equal(conv.state_dict()[k], v), k
    # the same embeddings through soundseek, from the converted directory
    fe = ClapFeatureExtractor.from_pretrained(str(ref_dir))
    tok = AutoTokenizer.from_pretrained(str(ref_dir))
    waves = [tone(0.5, 300.0, seed=1), tone(1.0, 700.0, seed=2)]
    inp = fe(waves, sampling_rate=48000, return_tensors="pt")
    inp["is_longer"] = torch.zeros(2, 1, dtype=torch.bool)
    texts = ["a dog barks", "rain falls"]
    with torch.no_grad():
        a = ref.get_audio_features(**inp).pooler_output.numpy()
        t = ref.get_text_features(**tok(texts, padding=True, return_tensors="pt")).pooler_output.numpy()
    pipe = Pipeline.load(f"hf-clap:{out}")
    np.testing.assert_allclose(pipe.embed_audio(waves)[0], a, atol=1e-5)
    np.testing.assert_allclose(pipe.embed_text(texts), t, atol=1e-5)


def test_default_preprocessor_follows_fusion(tmp_path):
    from transformers import ClapFeatureExtractor, ClapModel

    from soundseek.models.laion_clap import convert_laion_clap

    ref_dir = make_tiny_clap(tmp_path / "hf", fusion=True)
    src = tmp_path / "fused.pt"
    torch.save({"state_dict": hf_to_laion(ClapModel.from_pretrained(str(ref_dir)).state_dict())}, src)
    rep = convert_laion_clap(src, tmp_path / "out", config=ref_dir / "config.json", tokenizer=ref_dir)
    fe = ClapFeatureExtractor.from_pretrained(str(tmp_path / "out"))
    assert fe.truncation == "fusion" and fe.sampling_rate == 48000 and fe.frequency_min == 50
    assert "audio_branch.tscam_conv.weight" in rep["ignored"]


def test_code_carrying_pickle_is_refused(tmp_path, capsys):
    from soundseek.cli.main import main

    ref_dir = make_tiny_clap(tmp_path / "hf")
    src = tmp_path / "evil.pt"
    torch.save({"state_dict": {"logit_scale_a": torch.zeros(())}, "args": argparse.Namespace(lr=1)}, src)
    assert main(["convert", "laion-clap", str(src), str(tmp_path / "o"), "--config", str(ref_dir),
                 "--tokenizer", str(ref_dir)]) == 2
    err = capsys.readouterr().err
    assert "arbitrary Python objects" in err and "refused" in err
    assert not (tmp_path / "o").exists()


def test_wrong_architecture_and_existing_output_are_errors(tmp_path):
    from transformers import ClapModel

    from soundseek.models.laion_clap import convert_laion_clap

    small = make_tiny_clap(tmp_path / "a", fusion=False)
    fused = make_tiny_clap(tmp_path / "b", fusion=True)
    src = tmp_path / "unfused.pt"
    torch.save({"state_dict": hf_to_laion(ClapModel.from_pretrained(str(small)).state_dict())}, src)
    with pytest.raises(ValueError, match="missing weights .*fusion_model"):
        convert_laion_clap(src, tmp_path / "o1", config=fused, tokenizer=fused)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(FileExistsError):
        convert_laion_clap(src, tmp_path / "full", config=small, tokenizer=small)
    with pytest.raises(FileNotFoundError, match="tokenizer"):
        convert_laion_clap(src, tmp_path / "o2", config=small, tokenizer=tmp_path)
