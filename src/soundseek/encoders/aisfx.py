"""The aisfx sound-effects CNN as a frame-level audio encoder (METHODS §3, offline default).

Credit: weights and architecture from the ``aisfx`` package 0.1.2 (A. B. Ma, A. Lerch,
"Representation Learning for the Automatic Indexing of Sound Effects Libraries", ISMIR 2022;
model "X-Sequential-CE"), licensed CC BY 4.0. Its ``EmbeddingNet`` is the DCASE cross-task
baseline "Cnn_9layers" (Kong et al. 2018). The module below is our own re-implementation; the
checkpoint shipped in the package (``aisfx/models/checkpoint.pth``) is read with
``torch.load(weights_only=True)`` and a scoped allow-list of the numpy scalar types it holds.

Network: 4 blocks of (3x3 conv-BN-ReLU) x 2 with 64/128/256/512 channels, 2x2 max pooling after
blocks 1-3; features = mean over frequency -> ``(B, T', 512)`` with ``T' = T // 8`` frames of
8 * 1024 / 44100 = 186 ms. aisfx's own embedding is the max over time of these frames, computed
on 100-frame (2.3 s) blocks; here the whole clip is one block and the max is left to the pooling.

Front end (torch, ``soundseek.audio.features.LogMel``; no librosa/essentia at run time):
44.1 kHz, frames of 2048 with hop 1024, centred zero padding, power spectrum, 96 HTK mel bands
0-22050 Hz with unit-sum rows, ``log10(10000 x + 1)``, then divided by 9.457798957824707 (the
"original" min-max constants of the paper). Two variants (``frontend=``):

* ``"essentia"`` (default: what the network was trained on, the paper's and aisfx's default
  path): symmetric Hann window, triangles linear in the *mel* domain ("warping" weighting),
  no wave normalisation (EasyLoader's replay gain -6 dB is a unit gain).
* ``"librosa"``: aisfx's ``spectrogram_librosa`` path: periodic Hann, triangles linear in Hz
  (L1-normalised rows), wave peak-normalised to 1. (aisfx 0.1.2 forgets to transpose the
  librosa spectrogram before blocking — we use the intended (T, 96) orientation.)
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from soundseek.audio.features import aisfx_logmel
from soundseek.encoders.base import (AudioEncoder, ConvBNPair, file_digest, length_mask, pad_to_min, short_rows_alone,
                                     valid_counts)
from soundseek.encoders.checkpoint import CheckpointError, load_into, load_object, strip_prefix

FRONTENDS = ("essentia", "librosa")
SPEC_MAX = 9.457798957824707  # aisfx preprocessing.spectrogram_normalize(spec_norm="original")
SAMPLE_RATE = 44100


def essentia_mel_filterbank(sr: int = SAMPLE_RATE, n_fft: int = 2048, n_mels: int = 96, fmin: float = 0.0,
                            fmax: float = 22050.0) -> np.ndarray:
    """Essentia ``MelBands(warpingFormula="htkMel", weighting="warping", normalize="unit_sum")``.

    Triangles are linear in HTK mel (``1127.01048 ln(1 + f/700)``) between edges equally spaced in
    mel; each row is scaled to sum 1. Returns (n_mels, n_fft // 2 + 1).
    """
    def hz2mel(f):
        return 1127.01048 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    edges = np.linspace(hz2mel(fmin), hz2mel(fmax), n_mels + 2)  # in mel
    bin_mel = hz2mel(np.arange(n_fft // 2 + 1) * sr / n_fft)
    lo, c, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    w = np.maximum(0.0, np.minimum((bin_mel - lo) / (c - lo), (hi - bin_mel) / (hi - c)))
    return (w / np.maximum(w.sum(axis=1, keepdims=True), 1e-30)).astype(np.float32)


class _Block(ConvBNPair):
    """Two 3x3 conv-BN-ReLU layers, then 2x2 max pooling when ``pool``."""

    def forward(self, x: torch.Tensor, pool: bool, lengths: torch.Tensor | None = None) -> torch.Tensor:
        x = self.convs(x, lengths)
        return F.max_pool2d(x, 2) if pool else x


class AisfxEncoder(AudioEncoder):
    """aisfx 512-d CNN: wave (B, N) at 44.1 kHz -> frames (B, T // 8, 512) + mask.

    Args:
        frontend: ``"essentia"`` (default) or ``"librosa"``, see the module docstring.
    Use :meth:`from_pretrained` for the packaged weights; ``AisfxEncoder()`` is random.
    """

    sample_rate = SAMPLE_RATE
    out_dim = 512
    computation = 2

    def __init__(self, frontend: str = "essentia") -> None:
        super().__init__()
        if frontend not in FRONTENDS:
            raise ValueError(f"Invalid aisfx frontend {frontend!r}. Valid: {', '.join(FRONTENDS)}")
        self.frontend_name = frontend
        self.frontend = aisfx_logmel()
        if frontend == "essentia":
            lm = self.frontend
            self.frontend.window = torch.hann_window(lm.win_length, periodic=False)
            self.frontend.mel_fb = torch.from_numpy(essentia_mel_filterbank().T.copy())
        self.peak_normalize = frontend == "librosa"
        chans = (1, 64, 128, 256, 512)
        for i in range(4):
            setattr(self, f"conv_block{i + 1}", _Block(chans[i], chans[i + 1]))
        self.weights_id = "random"

    def features(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None,
                 lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised log-mel (B, T, 96) exactly as the network expects it; ``lengths`` (B,):
        valid samples per row (each row's frames as if alone, see ``LogMel.forward``)."""
        if self.peak_normalize:
            w = wave if wave_mask is None else wave * wave_mask
            peak = w.abs().amax(dim=1, keepdim=True)
            wave = wave / torch.where(peak > 0, peak, torch.ones_like(peak))
        return self.frontend(wave, lengths) / SPEC_MAX

    def forward_mel(self, mel: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Network on normalised log-mel (B, T, 96) -> frames (B, T // 8, 512).

        ``lengths`` (B,): valid mel frames per row; each row's first ``lengths // 8`` output
        frames are then those of its first ``lengths`` mel frames alone (the step after a
        row's end is zeroed before every convolution, as the convolution's own padding would
        be; the floor-mode poolings keep valid frames apart from padded ones)."""
        x = mel[:, None]  # (B, 1, T, 96)
        for i in range(1, 5):
            x = getattr(self, f"conv_block{i}")(x, pool=i < 4, lengths=lengths)
            if lengths is not None and i < 4:
                lengths = torch.div(lengths, 2, rounding_mode="floor")
        return x.mean(dim=3).transpose(1, 2)  # (B, T', 512)

    def forward(self, wave: torch.Tensor, wave_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: wave (B, N) float32 at 44.1 kHz, wave_mask (B, N) bool prefix mask or None.
        Returns: frames (B, T', 512), frame_mask (B, T') bool.

        A clip's valid frames do not depend on the batch: they equal those of the clip
        encoded alone (a clip shorter than 8 hops alone is zero-padded to 8 * 1024 samples,
        giving one frame; in a batch it gets the same frame)."""
        if wave.ndim != 2:
            raise ValueError(f"AisfxEncoder expects a wave of shape (B, N), got {tuple(wave.shape)}")
        min_samples = 8 * 1024  # >= 8 frames so T' >= 1
        n_valid = valid_counts(wave, wave_mask).cpu()
        n_eff = torch.where(n_valid > 0, n_valid.clamp(min=min_samples), n_valid)  # alone: zero-padded to 8192
        wave, wave_mask = pad_to_min(wave, wave_mask, min_samples)
        exact = bool((n_valid < wave.shape[1]).any())  # some row is padded: work per valid length
        t_valid = self.frontend.num_frames(n_eff)
        mel = self.features(wave, wave_mask, n_valid if exact else None)
        if exact:
            mel = short_rows_alone(mel, wave, n_valid, min_samples, self.features)
        frames = self.forward_mel(mel, t_valid if exact else None)
        mask = length_mask(torch.div(t_valid, 8, rounding_mode="floor").to(frames.device), frames.shape[1])
        return frames, mask

    @staticmethod
    def clip(frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """aisfx's embedding: max over valid frames (B, 512); rows without valid frames -> 0."""
        mx = frames.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        return torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))

    def config(self) -> dict:
        return {**super().config(), "frontend": self.frontend_name, "weights": self.weights_id}

    @staticmethod
    def default_checkpoint() -> Path:
        """``checkpoint.pth`` inside the installed aisfx package (the package is not imported)."""
        spec = importlib.util.find_spec("aisfx")
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(
                "The aisfx package is not installed, so its checkpoint cannot be found. Install it "
                "without its dependencies: pip install --no-deps aisfx==0.1.2 (or pass path=...)."
            )
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
        if not path.is_file():
            raise CheckpointError(f"aisfx is installed but {path} is missing; reinstall aisfx==0.1.2")
        return path

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, frontend: str = "essentia",
                        strict: bool = True) -> "AisfxEncoder":
        """Load the packaged weights (or ``path``: a file of the same layout).

        The file is ``(state_dict, {dataset: (np.int64 index, n_classes)})``; keys
        ``embedding_net.*`` are loaded, the per-dataset classifier heads ``fc.*`` are ignored.
        """
        path = Path(path) if path is not None else cls.default_checkpoint()
        obj = load_object(path, safe_globals=_numpy_scalar_globals())
        sd = obj[0] if isinstance(obj, (tuple, list)) else obj
        if not isinstance(sd, dict):
            raise CheckpointError(f"{path}: expected (state_dict, datasets), got {type(obj).__name__}")
        heads = [k for k in sd if k.startswith("fc.")]  # classifier heads: explicitly not used
        sd = {k: v for k, v in sd.items() if k not in heads}
        sd = strip_prefix(sd, ("module.", "embedding_net."))
        model = cls(frontend=frontend)
        load_into(model, sd, strict=strict, source=str(path))
        model.weights_id = f"aisfx-0.1.2:{file_digest(path)[:16]}"
        return model.eval()


@functools.lru_cache(maxsize=2)
def _classifier_heads(path: str) -> tuple[dict, tuple[int, ...]]:
    """``fc.*`` tensors and class counts (in head order) of an aisfx checkpoint, read once per
    process (a model with category features is built twice when loaded: shapes first, then
    weights)."""
    obj = load_object(path, safe_globals=_numpy_scalar_globals())
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2 and isinstance(obj[0], dict)
            and isinstance(obj[1], dict)):
        raise CheckpointError(f"{path}: expected (state_dict, datasets) with classifier heads")
    sd, datasets = strip_prefix(obj[0], ("module.",)), obj[1]
    order = sorted(datasets, key=lambda k: int(datasets[k][0]))
    heads = {k: v for k, v in sd.items() if k.startswith("fc.")}
    return heads, tuple(int(datasets[k][1]) for k in order)


def _numpy_scalar_globals() -> list:
    """Globals the aisfx pickle needs: numpy scalar reconstruction and the int64 dtype."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    scalar = multiarray.scalar
    return [(scalar, "numpy.core.multiarray.scalar"), scalar, np.dtype, type(np.dtype(np.int64))]


CATEGORY_OUTPUTS = ("probs", "hidden")


class AisfxCategories(torch.nn.Module):
    """aisfx's nine frozen classifier heads, as category features of a clip.

    The aisfx checkpoint carries, besides the embedding network, one MLP head per sound-effects
    library it was trained on (``512 -> 256 -> 128 -> C``, ReLU between; the libraries are
    prosfx, soundlyTrain, ucsMixed, soundstormBalanced, productionelementsBalanced,
    cartoonexpressBalanced, hpxdigitalBalanced, series6000Balanced, series9000Balanced with
    378 classes in all; the class names are not in the package). Applied to aisfx's clip embedding
    (the max over frames), they give what those libraries' labels say about a clip, learned from
    far more labelled effects than a retrieval corpus holds.

    Args:
        output: ``"probs"``: the per-library class probabilities, concatenated (B, 378);
            ``"hidden"``: the heads' last hidden layers (ReLU), concatenated (B, 9 * 128).

    The weights are buffers (saved with a model, never trained). ``AisfxCategories()`` is zero;
    :meth:`from_pretrained` reads the packaged checkpoint (``weights_only=True``).
    """

    def __init__(self, output: str = "probs", sizes: tuple[int, ...] = (78, 79, 69, 81, 10, 27, 3, 23, 8)) -> None:
        super().__init__()
        if output not in CATEGORY_OUTPUTS:
            raise ValueError(f"Invalid aisfx category output {output!r}. Valid: {', '.join(CATEGORY_OUTPUTS)}")
        self.output, self.sizes = output, tuple(int(s) for s in sizes)
        for i, c in enumerate(self.sizes):
            for j, (o, n) in enumerate(((256, 512), (128, 256), (c, 128))):
                self.register_buffer(f"w{i}_{j}", torch.zeros(o, n))
                self.register_buffer(f"b{i}_{j}", torch.zeros(o))
        self.in_dim = 512
        self.out_dim = sum(self.sizes) if output == "probs" else 128 * len(self.sizes)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """aisfx clip embeddings (B, 512) -> category features (B, out_dim)."""
        if emb.ndim != 2 or emb.shape[1] != self.in_dim:
            raise ValueError(f"AisfxCategories expects (B, {self.in_dim}) clip embeddings, got {tuple(emb.shape)}")
        outs = []
        for i in range(len(self.sizes)):
            h = F.relu(F.linear(emb, getattr(self, f"w{i}_0"), getattr(self, f"b{i}_0")))
            h = F.relu(F.linear(h, getattr(self, f"w{i}_1"), getattr(self, f"b{i}_1")))
            if self.output == "hidden":
                outs.append(h)
            else:
                outs.append(F.linear(h, getattr(self, f"w{i}_2"), getattr(self, f"b{i}_2")).softmax(dim=-1))
        return torch.cat(outs, dim=-1)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, output: str = "probs") -> "AisfxCategories":
        """The heads ``fc.{i}.{0,2,4}`` of the packaged checkpoint (or ``path``, same layout)."""
        path = Path(path) if path is not None else AisfxEncoder.default_checkpoint()
        sd, sizes = _classifier_heads(str(path))
        model = cls(output=output, sizes=sizes)
        for i in range(len(sizes)):
            for j, layer in enumerate((0, 2, 4)):
                for kind, short in (("weight", "w"), ("bias", "b")):
                    key = f"fc.{i}.{layer}.{kind}"
                    if key not in sd:
                        raise CheckpointError(f"{path}: classifier head key {key} is missing")
                    dst = getattr(model, f"{short}{i}_{j}")
                    if tuple(sd[key].shape) != tuple(dst.shape):
                        raise CheckpointError(f"{path}: {key} has shape {tuple(sd[key].shape)}, expected {tuple(dst.shape)}")
                    dst.copy_(sd[key].float())
        return model
