"""Hugging Face audio encoders (AST, wav2vec 2.0, HuBERT, WavLM, Whisper) as frame-level encoders:
torch preprocessing == the checkpoint's feature extractor, hidden states == transformers' forward,
a clip's frames independent of its batch, masks from valid lengths."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_helpers import make_tiny_audio_model, tone

KINDS = [("ast", {}), ("whisper", {}), ("wav2vec2", {"feat_extract_norm": "group"}),
         ("wav2vec2", {"feat_extract_norm": "layer", "do_stable_layer_norm": True}),
         ("hubert", {"feat_extract_norm": "layer"}), ("wavlm", {"feat_extract_norm": "layer"})]
IDS = ["ast", "whisper", "wav2vec2-group", "wav2vec2-layer", "hubert", "wavlm"]


@pytest.fixture(scope="module", params=KINDS, ids=IDS)
def tiny(request, tmp_path_factory):
    kind, over = request.param
    path = make_tiny_audio_model(tmp_path_factory.mktemp(kind) / kind, kind, **over)
    from soundseek.encoders import build_audio_encoder

    return kind, path, build_audio_encoder(f"hf-{kind}", path=str(path)).eval()


def _waves():
    return [tone(0.45, 300.0, sr=16000, seed=1), tone(0.8, 500.0, sr=16000, seed=2), tone(0.2, 900.0, sr=16000, seed=3)]


def _reference(kind, path, wave):
    """transformers' own preprocessing + forward on one clip (its valid frames)."""
    import transformers as tf

    fe = tf.AutoFeatureExtractor.from_pretrained(str(path), local_files_only=True)
    with torch.no_grad():
        if kind == "ast":
            m = tf.ASTModel.from_pretrained(str(path)).eval()
            out = m(**fe([wave], sampling_rate=16000, return_tensors="pt")).last_hidden_state[0, 2:]
            f_out = (m.config.num_mel_bins - 16) // 10 + 1
            return out.reshape(f_out, -1, out.shape[-1]).mean(0)
        if kind == "whisper":
            m = tf.WhisperModel.from_pretrained(str(path)).eval().get_encoder()
            return m(fe([wave], sampling_rate=16000, return_tensors="pt").input_features).last_hidden_state[0]
        m = tf.AutoModel.from_pretrained(str(path)).eval()
        return m(fe([wave], sampling_rate=16000, return_tensors="pt").input_values).last_hidden_state[0]


def test_frames_equal_transformers(tiny):
    from soundseek.audio.io import batch_waves

    kind, path, enc = tiny
    for w in _waves():
        with torch.no_grad():
            frames, mask = enc(*batch_waves([w]))
        ref = _reference(kind, path, w)
        n = int(mask[0].sum())
        assert n >= 1
        torch.testing.assert_close(frames[0, :n], ref[:n], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind, over", [("whisper", {}), ("wav2vec2", {"feat_extract_norm": "layer"}),
                                        ("hubert", {"feat_extract_norm": "layer"})])
def test_processor_layout_equals_transformers(kind, over, tmp_path):
    """A directory whose extractor was saved by its processor (WhisperProcessor / Wav2Vec2Processor:
    processor_config.json, no preprocessor_config.json) loads, bounded, and equals transformers.
    (AST has no processor: its extractor is always saved as preprocessor_config.json.)"""
    import json

    from soundseek.audio.io import batch_waves
    from soundseek.encoders import build_audio_encoder
    from soundseek.encoders.hf_load import HFLoadError

    path = make_tiny_audio_model(tmp_path / kind, kind, layout="processor", **over)
    enc = build_audio_encoder(f"hf-{kind}", path=str(path)).eval()
    for w in _waves():
        with torch.no_grad():
            frames, mask = enc(*batch_waves([w]))
        n = int(mask[0].sum())
        torch.testing.assert_close(frames[0, :n], _reference(kind, path, w)[:n], atol=1e-5, rtol=1e-4)
    cfg = json.loads((path / "processor_config.json").read_text())
    cfg["feature_extractor"]["sampling_rate"] = 10  # hostile settings are refused in this layout too
    (path / "processor_config.json").write_text(json.dumps(cfg))
    with pytest.raises(HFLoadError, match="sampling_rate"):
        build_audio_encoder(f"hf-{kind}", path=str(path))


def test_alone_equals_batched_and_masks_follow_lengths(tiny):
    from soundseek.audio.io import batch_waves

    kind, _, enc = tiny
    waves = _waves() + [tone(2.3, 200.0, sr=16000, seed=4)]  # longer than an AST / Whisper window
    with torch.no_grad():
        fb, mb = enc(*batch_waves(waves))
        counts = []
        for i, w in enumerate(waves):
            fa, ma = enc(*batch_waves([w]))
            assert torch.equal(ma[0], mb[i, : ma.shape[1]]) and not mb[i, ma.shape[1]:].any()
            torch.testing.assert_close(fa[0][ma[0]], fb[i][mb[i]], atol=1e-5, rtol=1e-4)
            counts.append(int(ma.sum()))
    assert fb.shape[-1] == enc.out_dim and counts[3] > counts[1] > counts[0] > counts[2] >= 1
    if kind == "whisper":  # 20 ms per frame
        assert counts[1] == math.ceil(0.8 * 50) and counts[3] == math.ceil(2.3 * 50)
    if kind in ("wav2vec2", "hubert", "wavlm"):  # the tiny conv stack: kernels (10, 4, 4), strides (5, 4, 4)
        def conv_frames(n):
            for k, s in ((10, 5), (4, 4), (4, 4)):
                n = (n - k) // s + 1
            return n

        assert counts == [conv_frames(len(w)) for w in waves]
    if kind == "ast":  # one frame per 10 fbank frames (100 ms), windows of 100 frames
        assert counts[1] == (1 + (int(0.8 * 16000) - 400) // 160 - 16) // 10 + 1


def test_empty_clip_gives_no_valid_frame(tiny):
    from soundseek.audio.io import batch_waves

    _, _, enc = tiny
    with torch.no_grad():
        frames, mask = enc(*batch_waves([np.zeros(0, np.float32), tone(0.5, 300.0, sr=16000)]))
    assert not mask[0].any() and mask[1].any()


def test_trainable_and_frozen(tiny):
    from soundseek.encoders import build_audio_encoder

    kind, path, enc = tiny
    assert all(p.requires_grad for p in enc.parameters())  # like every encoder: trainable unless frozen
    frozen = build_audio_encoder(f"hf-{kind}", path=str(path), trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    live = build_audio_encoder(f"hf-{kind}", path=str(path), trainable=True).train()
    from soundseek.audio.io import batch_waves

    frames, mask = live(*batch_waves(_waves()[:2]))
    (frames[mask] ** 2).mean().backward()
    assert sum(float(p.grad.abs().sum()) for p in live.parameters() if p.grad is not None) > 0
    cfg = enc.config()
    assert cfg["family"] == f"hf-{kind}" and cfg["weights"] and cfg["out_dim"] == enc.out_dim


def test_wrong_family_and_missing_files(tmp_path):
    from soundseek.config import ConfigError
    from soundseek.encoders import build_audio_encoder

    p = make_tiny_audio_model(tmp_path / "h", "hubert", feat_extract_norm="layer")
    with pytest.raises(ValueError, match="'hubert' model, not wav2vec2"):
        build_audio_encoder("hf-wav2vec2", path=str(p))
    with pytest.raises(ConfigError, match="never downloaded"):
        build_audio_encoder("hf-ast")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        build_audio_encoder("hf-whisper", path="openai/whisper-tiny")
    (p / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights"):
        build_audio_encoder("hf-hubert", path=str(p))
    (p / "preprocessor_config.json").unlink()
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        build_audio_encoder("hf-hubert", path=str(p))


def test_registry_lists_hf_encoders():
    from soundseek.encoders import AUDIO_ENCODERS, TEXT_ENCODERS

    assert {"hf-ast", "hf-clap", "hf-hubert", "hf-wav2vec2", "hf-wavlm", "hf-whisper"} <= set(AUDIO_ENCODERS.names())
    assert "hf-clap" in TEXT_ENCODERS


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tiny):
    from soundseek.audio.io import batch_waves

    _, _, enc = tiny
    x, m = batch_waves(_waves() + [tone(2.3, 200.0, sr=16000, seed=4)])
    with torch.no_grad():
        f_cpu, m_cpu = enc(x, m)
        f_gpu, m_gpu = enc.cuda()(x.cuda(), m.cuda())
    enc.cpu()
    assert torch.equal(m_cpu, m_gpu.cpu())
    torch.testing.assert_close(f_gpu.cpu()[m_cpu], f_cpu[m_cpu], atol=1e-4, rtol=1e-3)


def test_frozen_cached_equals_live(tiny, tmp_path):
    import soundfile as sf

    from soundseek.audio.io import batch_waves
    from soundseek.data.types import Clip
    from soundseek.encoders.cache import FeatureCache

    _, _, enc = tiny
    clips = []
    for i, w in enumerate(_waves() + [tone(2.3, 200.0, sr=16000, seed=4)]):
        sf.write(tmp_path / f"c{i}.wav", w, 16000, subtype="FLOAT")
        clips.append(Clip(f"c{i}", tmp_path / f"c{i}.wav"))
    with torch.inference_mode():
        store = FeatureCache(tmp_path / "cache", dtype="float32").audio_features(clips, enc, batch_size=3,
                                                                                max_seconds=10, progress=False)
        for c in clips:
            live, m = enc(*batch_waves([sf.read(c.audio, dtype="float32")[0]]))
            np.testing.assert_allclose(np.asarray(store.get(store.index(c.id))), live[0][m[0]].numpy(),
                                       atol=1e-5, rtol=1e-4)


def test_lock_groups_partition_the_weights(tiny):
    """Blocks for "unlock the last N": every trainable tensor in exactly one group, layers in order."""
    _, _, enc = tiny
    groups = enc.lock_groups()
    seen = [id(p) for g in groups for p in g.parameters()]
    assert len(seen) == len(set(seen)) and len(groups) >= 2
    missing = [n for n, p in enc.named_parameters() if id(p) not in set(seen)]
    assert missing in ([], ["model.masked_spec_embed"])  # wav2vec-style SpecAugment vector (training only)


def test_unlocking_the_last_block(tiny):
    from soundseek.models.retrieval import lock_tower

    kind, path, _ = tiny
    from soundseek.encoders import build_audio_encoder

    enc = build_audio_encoder(f"hf-{kind}", path=str(path))
    lock_tower(enc, unlocked_blocks=1)
    last = {id(p) for p in enc.lock_groups()[-1].parameters()}
    assert last and all(p.requires_grad == (id(p) in last) for p in enc.parameters())


def test_ast_without_the_numpy_filter_bank_builds_the_same_front_end(tmp_path):
    """With torchaudio installed, ASTFeatureExtractor keeps no numpy filter bank: the encoder
    builds the same Kaldi bank itself (seen on a GPU machine whose image has torchaudio)."""
    import transformers as tf

    from soundseek.audio.io import batch_waves
    from soundseek.encoders.hf_audio import ASTEncoder

    path = make_tiny_audio_model(tmp_path / "ast", "ast")
    fe = tf.ASTFeatureExtractor.from_pretrained(str(path), local_files_only=True)
    model = tf.ASTModel.from_pretrained(str(path)).eval()
    ref = ASTEncoder(model, fe).eval()
    fe.mel_filters = fe.window = None
    alt = ASTEncoder(model, fe).eval()
    with torch.no_grad():
        a, b = ref(*batch_waves(_waves())), alt(*batch_waves(_waves()))
    assert torch.equal(a[1], b[1])
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)
