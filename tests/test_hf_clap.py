"""``--model hf-clap:PATH``: a Hugging Face ClapModel directory as a complete search model.

Tiny random ClapModels are built and saved with ``save_pretrained`` (the official layout); every
number is compared with transformers' own ``get_audio_features`` / ``get_text_features``.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from hf_helpers import make_tiny_clap, tone

CAPTIONS = ["a dog barks loudly", "rain falls on metal roof", "car engine starts and idles", "birds sing",
            "water flows", "door slams", "bell rings in the distance", "people talk while music plays"]


@pytest.fixture(scope="module", params=[(False, "feature_extractor"), (True, "feature_extractor"),
                                        (False, "processor"), (True, "processor")],
                ids=["unfused", "fused", "unfused-processor", "fused-processor"])
def clap_dir(request, tmp_path_factory):
    """Both layouts the installed transformers writes: ClapFeatureExtractor.save_pretrained
    (preprocessor_config.json) and ClapProcessor.save_pretrained (processor_config.json)."""
    fusion, layout = request.param
    return make_tiny_clap(tmp_path_factory.mktemp("clap") / "clap-tiny", fusion=fusion, layout=layout)


@pytest.fixture(scope="module")
def unfused_dir(tmp_path_factory):
    return make_tiny_clap(tmp_path_factory.mktemp("clapu") / "clap-unfused", fusion=False, seed=1)


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory):
    """``ClapModel(...).save_pretrained(D)`` + ``ClapProcessor(...).save_pretrained(D)``: no
    preprocessor_config.json, the extractor's settings inside processor_config.json."""
    return make_tiny_clap(tmp_path_factory.mktemp("clapp") / "clap-processor", fusion=False, seed=1,
                          layout="processor")


def _hf(path):
    from transformers import AutoTokenizer, ClapFeatureExtractor, ClapModel

    return (ClapModel.from_pretrained(str(path), local_files_only=True).eval(),
            ClapFeatureExtractor.from_pretrained(str(path), local_files_only=True),
            AutoTokenizer.from_pretrained(str(path), local_files_only=True))


def _hf_audio(model, fe, waves):
    inp = fe(waves, sampling_rate=fe.sampling_rate, return_tensors="pt")
    inp["is_longer"] = torch.tensor([[len(w) > fe.nb_max_samples] for w in waves])  # each clip's own flag
    with torch.no_grad():
        return model.get_audio_features(**inp).pooler_output.numpy()


def _hf_text(model, tok, texts):
    with torch.no_grad():
        return model.get_text_features(**tok(list(texts), padding=True, return_tensors="pt")).pooler_output.numpy()


def _waves(n=6, seconds=(0.4, 1.0, 0.7, 0.25, 0.9, 0.55)):
    return [tone(seconds[i % len(seconds)], 150.0 * (i + 1), seed=i) for i in range(n)]


def test_embeddings_equal_transformers(clap_dir):
    from soundseek.pipeline import Pipeline

    model, fe, tok = _hf(clap_dir)
    pipe = Pipeline.load(f"hf-clap:{clap_dir}")
    assert pipe.sample_rate == 48000 and pipe.dim == 12
    waves = _waves()
    emb, frames = pipe.embed_audio(waves)
    np.testing.assert_allclose(emb, _hf_audio(model, fe, waves), atol=1e-5)
    assert all(f.shape == (1, 12) for f in frames)
    np.testing.assert_allclose(pipe.embed_text(CAPTIONS), _hf_text(model, tok, CAPTIONS), atol=1e-5)
    assert pipe.rerank("a dog", frames) is None  # CLAP scores are embedding cosines: nothing to re-rank
    # logit scale and temperature are the checkpoint's
    assert math.isclose(float(pipe.model.scorer.logit_scale_a), float(model.logit_scale_a.detach()), rel_tol=1e-6)
    assert math.isclose(pipe.model.temperature(), math.exp(-float(model.logit_scale_a.detach())), rel_tol=1e-6)


def test_batch_independence(clap_dir):
    """A clip's embedding / frames do not depend on the other clips of its batch (or their padding)."""
    from soundseek.audio.io import batch_waves
    from soundseek.models.clap import ClapAudioEncoder, ClapTextEncoder

    waves = _waves(3) + [tone(2.3, 330.0, seed=9)]  # one long clip
    for output in ("embedding", "frames"):
        enc = ClapAudioEncoder.from_pretrained(clap_dir, output=output).eval()
        with torch.no_grad():
            fb, mb = enc(*batch_waves(waves))
            for i, w in enumerate(waves):
                fa, ma = enc(*batch_waves([w]))
                assert torch.equal(ma[0], mb[i, : ma.shape[1]]) and not mb[i, ma.shape[1]:].any()
                torch.testing.assert_close(fa[0][ma[0]], fb[i][mb[i]], atol=1e-5, rtol=1e-5)
    text = ClapTextEncoder.from_pretrained(clap_dir).eval()
    with torch.no_grad():
        batched = text(CAPTIONS)
        for i, c in enumerate(CAPTIONS):
            torch.testing.assert_close(text([c]).sentence[0], batched.sentence[i], atol=1e-5, rtol=1e-5)


def test_frame_masks_follow_valid_length(unfused_dir):
    from soundseek.audio.io import batch_waves
    from soundseek.models.clap import ClapAudioEncoder

    enc = ClapAudioEncoder.from_pretrained(unfused_dir, output="frames").eval()
    tw = enc.frames_per_window()
    with torch.no_grad():
        frames, mask = enc(*batch_waves([tone(0.5, 200.0), tone(1.0, 300.0), tone(2.5, 400.0), np.zeros(0)]))
    assert frames.shape[-1] == 12 and enc.out_dim == 12
    assert mask.sum(1).tolist() == [math.ceil(0.5 * tw), tw, 2 * tw + math.ceil(0.5 * tw), 0]


def test_fused_long_clip_is_deterministic_fusion(monkeypatch, tmp_path):
    """Fused checkpoints fuse long clips like ClapFeatureExtractor, the crops at the middle candidates."""
    from soundseek.pipeline import Pipeline

    d = make_tiny_clap(tmp_path / "fused", fusion=True, seed=2)
    model, fe, _ = _hf(d)
    long = tone(2.6, 310.0, seed=4)
    pipe = Pipeline.load(f"hf-clap:{d}")
    ours = pipe.embed_audio([long])[0]
    assert np.array_equal(ours, pipe.embed_audio([long])[0])  # no randomness
    monkeypatch.setattr(np.random, "choice", lambda r: r[len(r) // 2])
    np.testing.assert_allclose(ours, _hf_audio(model, fe, [long]), atol=1e-5)


def test_unfused_long_clip_averages_windows(unfused_dir):
    from soundseek.pipeline import Pipeline

    model, fe, _ = _hf(unfused_dir)
    long = tone(2.4, 250.0, seed=5)
    L = fe.nb_max_samples
    windows = [long[0:L], long[L:2 * L], long[len(long) - L:]]  # the last window aligned to the end
    ref = _hf_audio(model, fe, windows)
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    ref = ref.mean(0) / np.linalg.norm(ref.mean(0))
    emb, frames = Pipeline.load(f"hf-clap:{unfused_dir}").embed_audio([long])
    assert frames[0].shape[0] == 3
    np.testing.assert_allclose(emb[0], ref, atol=1e-5)


def _write_corpus(root, n=8):
    (root / "audio").mkdir(parents=True)
    rows = []
    for i, w in enumerate(_waves(n)):
        sf.write(root / "audio" / f"c{i}.wav", w, 48000, subtype="FLOAT")
        rows.append({"audio": f"audio/c{i}.wav", "captions": [CAPTIONS[i], CAPTIONS[(i + 3) % n] + " again"],
                     "split": "test" if i % 4 else "train", "category": ["dog", "rain"][i % 2]})
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return rows


@pytest.mark.parametrize("layout", ["unfused_dir", "processor_dir"])
def test_index_returns_each_clips_own_audio_first(layout, request, tmp_path, capsys):
    from soundseek.cli.main import main

    unfused_dir = request.getfixturevalue(layout)

    _write_corpus(tmp_path / "corpus")
    idx = tmp_path / "index"
    assert main(["index", str(tmp_path / "corpus" / "audio"), "--index", str(idx), "--model",
                 f"hf-clap:{unfused_dir}", "--no-progress"]) == 0
    capsys.readouterr()
    for i in range(8):
        assert main(["search", str(idx), "--audio", str(tmp_path / "corpus" / "audio" / f"c{i}.wav"), "-k", "3",
                     "--json"]) == 0  # the model recorded in the index is reused
        hits = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["hits"]
        assert hits[0]["path"].endswith(f"c{i}.wav") and hits[0]["score"] > 0.9999
    assert main(["search", str(idx), "a dog barks", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["hits"]) == 8


def test_eval_equals_hand_scoring(unfused_dir, tmp_path, capsys):
    from soundseek import metrics
    from soundseek.cli.main import main

    rows = _write_corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    base = ["eval", "--model", f"hf-clap:{unfused_dir}", "--data", str(tmp_path / "corpus"), "--split", "test",
            "--set", f"data.cache_dir={cache}"]
    assert main(base + ["--json", "--sk", "--ot"]) == 0
    got = json.loads(capsys.readouterr().out)
    # by hand: transformers embeddings of the test split, cosine scores, the published metrics
    model, fe, tok = _hf(unfused_dir)
    test = [r for r in rows if r["split"] == "test"]
    waves = [sf.read(tmp_path / "corpus" / r["audio"], dtype="float32")[0] for r in test]
    caps = [c for r in test for c in r["captions"]]
    owner = np.repeat(np.arange(len(test)), 2)
    scores = _hf_text(model, tok, caps) @ _hf_audio(model, fe, waves).T
    for direction, ref in (("t2a", metrics.t2a(scores, owner)), ("a2t", metrics.a2t(scores.T, owner))):
        for k, v in ref.items():
            assert got[direction][k] == pytest.approx(v, abs=1e-9), (direction, k)
    assert {"a2t_sk", "t2a_ot", "a2t_ot"} <= set(got)
    assert got["sk_tau"] == pytest.approx(math.exp(-float(model.logit_scale_a.detach())), rel=1e-6)
    assert main(base) == 0  # the table of a trained model
    table = capsys.readouterr().out
    assert "| t2a |" in table and "| a2t |" in table
    assert main(base[:-2] + ["--zeroshot", "--split", "all", "--json", "--set", f"data.cache_dir={cache}"]) == 0
    z = json.loads(capsys.readouterr().out)
    assert 0.0 <= z["top1"] <= 1.0


def test_eval_needs_exactly_one_model(unfused_dir, tmp_path, capsys):
    from soundseek.cli.main import main

    assert main(["eval"]) == 2
    assert main(["eval", "x.pt", "--model", f"hf-clap:{unfused_dir}"]) == 2
    assert "not both or neither" in capsys.readouterr().err


def test_hub_id_is_a_clear_error_and_never_downloads(monkeypatch, tmp_path):
    import transformers

    from soundseek.pipeline import Pipeline

    def no_hub(*a, **k):
        raise AssertionError("transformers was asked to load a hub id")

    monkeypatch.setattr(transformers.ClapModel, "from_pretrained", no_hub)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="never downloads.*--local-dir models/clap-htsat-unfused"):
        Pipeline.load("hf-clap:laion/clap-htsat-unfused")
    with pytest.raises(FileNotFoundError, match="no directory"):
        Pipeline.load(f"hf-clap:{tmp_path / 'missing'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Pipeline.load(f"hf-clap:{tmp_path / 'empty'}")
    with pytest.raises(KeyError, match="Valid: hf-clap"):
        Pipeline.load("hf-clip:whatever")


def test_hf_hub_offline_loads_local_directory(unfused_dir, monkeypatch):
    """With HF_HUB_OFFLINE=1 a local directory loads (local_files_only everywhere); a directory
    lacking the feature-extractor file is an error naming it, not a hub lookup."""
    import shutil

    from soundseek.pipeline import Pipeline

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe = Pipeline.load(f"hf-clap:{unfused_dir}")
    assert pipe.embed_text(["bell"]).shape == (1, 12)
    broken = unfused_dir.parent / "no-fe"
    shutil.copytree(unfused_dir, broken)
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        Pipeline.load(f"hf-clap:{broken}")
    shutil.copy(unfused_dir / "preprocessor_config.json", broken)
    (broken / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        Pipeline.load(f"hf-clap:{broken}")
    shutil.copy(unfused_dir / "model.safetensors", broken)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (broken / f).unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer files"):
        Pipeline.load(f"hf-clap:{broken}")
    from soundseek.cli.main import main

    assert main(["eval", "--model", f"hf-clap:{broken}"]) == 2  # a clear message, no traceback


def test_frozen_cached_equals_live(unfused_dir, tmp_path):
    from soundseek.audio.io import batch_waves
    from soundseek.data.formats import load_corpus
    from soundseek.encoders.cache import FeatureCache
    from soundseek.models.clap import ClapAudioEncoder

    _write_corpus(tmp_path / "corpus")
    clips = load_corpus(tmp_path / "corpus", "auto").clips
    enc = ClapAudioEncoder.from_pretrained(unfused_dir, output="frames").eval()
    with torch.inference_mode():
        store = FeatureCache(tmp_path / "cache", dtype="float32").audio_features(clips, enc, batch_size=3,
                                                                                max_seconds=10, progress=False)
        for c in clips:
            w = sf.read(c.audio, dtype="float32")[0]
            live, m = enc(*batch_waves([w]))
            np.testing.assert_allclose(np.asarray(store.get(store.index(c.id))), live[0][m[0]].numpy(), atol=1e-5)


def test_mismatched_preprocessor_is_rejected(tmp_path):
    from transformers import ClapFeatureExtractor

    from soundseek.models.clap import ClapAudioEncoder

    d = make_tiny_clap(tmp_path / "m", fusion=False)
    ClapFeatureExtractor(feature_size=64, max_length_s=1, truncation="fusion").save_pretrained(str(d))
    with pytest.raises(ValueError, match="enable_fusion=False"):
        ClapAudioEncoder.from_pretrained(d)
    with pytest.raises(ValueError, match="Invalid CLAP audio output"):
        ClapAudioEncoder.from_pretrained(make_tiny_clap(tmp_path / "n"), output="pooled")


def test_service_serves_a_clap_index(unfused_dir, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    import io

    from fastapi.testclient import TestClient

    from soundseek.index import build_index
    from soundseek.pipeline import Pipeline
    from soundseek.service.app import create_app

    _write_corpus(tmp_path / "corpus")
    pipe = Pipeline.load(f"hf-clap:{unfused_dir}")
    build_index(tmp_path / "corpus" / "audio", pipe, tmp_path / "idx", progress=False, model=f"hf-clap:{unfused_dir}")
    client = TestClient(create_app(tmp_path / "idx", pipe))
    r = client.get("/api/search", params={"q": "a dog barks loudly", "k": 3})
    assert r.status_code == 200 and len(r.json()["hits"]) == 3
    buf = io.BytesIO()
    sf.write(buf, sf.read(tmp_path / "corpus" / "audio" / "c2.wav", dtype="float32")[0], 48000, format="WAV",
             subtype="FLOAT")
    r = client.post("/api/search/audio", files={"file": ("q.wav", buf.getvalue(), "audio/wav")}, data={"k": 2})
    assert r.status_code == 200 and r.json()["hits"][0]["path"].endswith("c2.wav")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_clap_encoders_on_cuda_match_cpu(unfused_dir):
    from soundseek.audio.io import batch_waves
    from soundseek.models.clap import ClapAudioEncoder, ClapTextEncoder

    waves = _waves() + [tone(2.3, 330.0, seed=9)]
    for output in ("embedding", "frames"):
        enc = ClapAudioEncoder.from_pretrained(unfused_dir, output=output).eval()
        with torch.no_grad():
            f_cpu, m_cpu = enc(*batch_waves(waves))
            x, m = batch_waves(waves)
            f_gpu, m_gpu = enc.cuda()(x.cuda(), m.cuda())
        assert torch.equal(m_cpu, m_gpu.cpu())
        torch.testing.assert_close(f_gpu.cpu()[m_cpu], f_cpu[m_cpu], atol=1e-4, rtol=1e-3)
    text = ClapTextEncoder.from_pretrained(unfused_dir).eval()
    with torch.no_grad():
        s_cpu = text(CAPTIONS).sentence
        s_gpu = text.cuda()(CAPTIONS).sentence.cpu()
    torch.testing.assert_close(s_gpu, s_cpu, atol=1e-4, rtol=1e-3)


def test_window_batch_bounds_a_call_without_changing_results(unfused_dir):
    from soundseek.audio.io import batch_waves
    from soundseek.models.clap import ClapAudioEncoder

    waves = [tone(2.4, 250.0, seed=5), tone(0.5, 300.0, seed=6), tone(3.1, 350.0, seed=7)]
    calls = []
    for wb in (16, 1):
        enc = ClapAudioEncoder.from_pretrained(unfused_dir, output="embedding", window_batch=wb).eval()
        enc.audio_model.register_forward_hook(lambda m, i, o: calls.append(wb))
        with torch.no_grad():
            f, m = enc(*batch_waves(waves))
        if wb == 16:
            ref = (f, m)
    assert calls.count(16) == 1 and calls.count(1) == 3 + 1 + 4  # windows: 3, 1, 4
    assert torch.equal(m, ref[1])
    torch.testing.assert_close(f[m], ref[0][m], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="window_batch"):
        ClapAudioEncoder.from_pretrained(unfused_dir, window_batch=0)


def test_model_spec_parser():
    from pathlib import Path

    from soundseek.models.spec import ModelSpec, family_names, parse_model_spec

    assert parse_model_spec("hf-clap:models/clap") == ModelSpec("hf-clap", Path("models/clap"))
    assert str(parse_model_spec("hf-clap:/abs/dir")) == "hf-clap:/abs/dir"
    for not_a_spec in (None, "default", "runs/x/best.pt", "runs/a:b/best.pt", "C:\\models\\best.pt",
                       Path("hf-clap:x"), "best.pt"):
        assert parse_model_spec(not_a_spec) is None, not_a_spec
    with pytest.raises(KeyError, match="Invalid model family 'hf-clip'. Valid: hf-clap"):
        parse_model_spec("hf-clip:models/clap")
    assert "hf-clap" in family_names()


def test_moments_inside_long_files_with_clap_windows(unfused_dir, tmp_path):
    """A long file indexed with CLAP's window (1 s for the tiny model, the default: the model's
    input length, not the 600 s files are decoded to) gets window vectors and its hits carry a moment. (Which moment is the search's business; a random tiny CLAP embeds all
    windows almost alike, so the windows within the merge margin are merged.)"""
    from soundseek.index import build_index
    from soundseek.index.search import Searcher
    from soundseek.pipeline import Pipeline

    (tmp_path / "sounds").mkdir()
    parts = [tone(1.0, 200.0 * (i + 1), seed=20 + i) for i in range(4)]
    sf.write(tmp_path / "sounds" / "long.wav", np.concatenate(parts), 48000, subtype="FLOAT")
    sf.write(tmp_path / "sounds" / "short.wav", tone(0.7, 950.0, seed=30), 48000, subtype="FLOAT")
    pipe = Pipeline.load(f"hf-clap:{unfused_dir}")
    assert pipe.max_seconds == 600.0 and pipe.window_seconds == pytest.approx(1.0)
    build_index(tmp_path / "sounds", pipe, tmp_path / "idx", progress=False)
    man = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert (man["window"], man["hop"]) == pytest.approx((1.0, 0.5))
    hit = Searcher(tmp_path / "idx", pipe).search_audio(parts[2], k=1, sample_rate=48000)[0]
    assert hit["path"].endswith("long.wav") and hit["score"] > 0.9999
    assert 0.0 <= hit["start"] <= 2.0 and 3.0 <= hit["end"] <= 4.0 + 1e-6  # covers the matching second
