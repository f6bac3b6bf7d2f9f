"""PANNs CNN14 / ResNet38: official key layout, safe loading, front-end buffers, masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from soundseek.encoders.checkpoint import CheckpointError, load_state_dict, strip_prefix
from soundseek.encoders.panns import TORCHLIBROSA_KEYS, Cnn14, ResNet38, torchlibrosa_buffers

torch.set_num_threads(2)


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                v.uniform_(0.5, 1.0, generator=g) if k.endswith("running_var") else v.uniform_(-0.05, 0.05, generator=g)
    return model.eval()


def _official_file(tmp_path, model, prefix: str = "", extra: dict | None = None, drop=()):
    sd = {prefix + k: v.clone() for k, v in model.state_dict().items() if k not in drop}
    sd.update({prefix + k: v for k, v in torchlibrosa_buffers().items()})
    sd.update(extra or {})
    path = tmp_path / "ckpt.pth"
    torch.save({"model": sd, "sampler": {"epoch": 3}}, path)  # official files also carry extra entries
    return path


@pytest.mark.parametrize("cls, names", [
    (Cnn14, ["bn0.running_mean", "conv_block1.conv1.weight", "conv_block6.bn2.weight", "fc1.weight",
             "fc_audioset.bias"]),
    (ResNet38, ["conv_block1.bn1.weight", "resnet.layer1.2.conv2.weight", "resnet.layer2.0.downsample.1.weight",
                "resnet.layer4.2.bn2.running_var", "conv_block_after1.conv2.weight", "fc_audioset.weight"]),
])
def test_roundtrip_official_layout(tmp_path, cls, names):
    a = _randomize(cls())
    sd = a.state_dict()
    for n in names:  # the official parameter names (audioset_tagging_cnn/pytorch/models.py)
        assert n in sd, n
    assert not any(k.startswith("frontend.") for k in sd)
    path = _official_file(tmp_path, a, prefix="module.")
    b = cls.from_pretrained(path)
    wave = torch.randn(2, 32000) * 0.1
    mask = torch.ones_like(wave, dtype=torch.bool)
    mask[1, 20000:] = False
    with torch.no_grad():
        fa, ma = a(wave, mask)
        fb, mb = b(wave, mask)
        ca, cb = a.clip(fa, ma), b.clip(fb, mb)
    assert fa.shape == (2, 3, 2048) and ma.shape == (2, 3)
    assert torch.equal(fa, fb) and torch.equal(ma, mb)
    assert torch.equal(ca["clipwise_output"], cb["clipwise_output"]) and ca["clipwise_output"].shape == (2, 527)
    assert b.config()["weights"].startswith("ckpt.pth:")


def test_bad_checkpoint_errors_name_the_keys(tmp_path):
    a = _randomize(Cnn14())
    bad_mel = torchlibrosa_buffers()[TORCHLIBROSA_KEYS[2]] * 1.5
    path = _official_file(tmp_path, a, drop=("fc1.bias",), extra={
        "foo.weight": torch.zeros(3), "fc_audioset.weight": torch.zeros(10, 2048), TORCHLIBROSA_KEYS[2]: bad_mel})
    with pytest.raises(CheckpointError, match="logmel_extractor.melW: max"):  # front end checked first
        Cnn14.from_pretrained(path)
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): fc1.bias.*unexpected keys \(1\): foo.weight"
                                              r".*fc_audioset.weight: file \(10, 2048\) vs model \(527, 2048\)"):
        Cnn14.from_pretrained(path, check_frontend=False)  # the torchlibrosa buffers are ignored
    with pytest.warns(UserWarning, match="fc1.bias"):
        b = Cnn14.from_pretrained(path, strict=False, check_frontend=False)
    assert torch.equal(b.fc1.weight, a.fc1.weight) and torch.equal(b.conv_block3.bn1.running_var,
                                                                   a.conv_block3.bn1.running_var)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_unsafe_pickle_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "extra": _Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        Cnn14.from_pretrained(path)
    with pytest.raises(CheckpointError, match="not found"):
        Cnn14.from_pretrained(tmp_path / "nope.pth")


def test_torchlibrosa_buffers_match_outside_references():
    librosa = pytest.importorskip("librosa")
    buf = torchlibrosa_buffers()
    mel = librosa.filters.mel(sr=32000, n_fft=1024, n_mels=64, fmin=50, fmax=14000).T
    assert np.abs(buf[TORCHLIBROSA_KEYS[2]].numpy() - mel).max() < 1e-6
    x = np.random.default_rng(0).standard_normal(1024)
    win = librosa.filters.get_window("hann", 1024, fftbins=True)
    ref = np.fft.rfft(x * win)
    real = buf[TORCHLIBROSA_KEYS[0]][:, 0].double().numpy() @ x
    imag = buf[TORCHLIBROSA_KEYS[1]][:, 0].double().numpy() @ x
    assert np.abs(real - ref.real).max() < 1e-3 and np.abs(imag - ref.imag).max() < 1e-3


def test_frame_mask_equals_unpadded_length():
    m = Cnn14().eval()
    lens = [32000, 23000, 11000, 3000]
    waves = [torch.randn(n) * 0.1 for n in lens]
    batch = torch.zeros(len(lens), max(lens))
    mask = torch.zeros_like(batch, dtype=torch.bool)
    for i, w in enumerate(waves):
        batch[i, : len(w)] = w
        mask[i, : len(w)] = True
    with torch.no_grad():
        _, fm = m(batch, mask)
        for i, w in enumerate(waves):  # slow reference: each clip alone
            f_alone, m_alone = m(w[None])
            assert int(fm[i].sum()) == f_alone.shape[1] == int(m_alone.sum())


def test_strip_prefix_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    assert strip_prefix({"module.module.a": 1, "b": 2}) == {"a": 1, "b": 2}
    save_file({"w": torch.ones(2)}, str(tmp_path / "w.safetensors"))
    assert torch.equal(load_state_dict(tmp_path / "w.safetensors")["w"], torch.ones(2))
    torch.save({"model": {"w": torch.ones(2)}}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError, match="no entry 'state' .*top level: model"):
        load_state_dict(tmp_path / "w.pth", key="state")
