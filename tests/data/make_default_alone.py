"""Writes ``default_alone.npz``: embeddings of a few real-sfx-dev clips, each embedded *alone*
with the heads-only default model (``tests/fixtures/default_v1.pt``), as reference vectors.

The audio tower is swapped for the aisfx encoder as it was before its batched computation became
valid-length exact (commit c82f493, read with ``git show``; same packaged weights), so that the
test comparing against this file checks that a clip embedded alone keeps its vector. Run from
the repository root: ``PYTHONPATH=src python3 tests/data/make_default_alone.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

CLIPS = [  # very short, short, medium, long (cropped to 10 s by the pipeline)
    "audio/sonic-pi/elec_tick.flac",
    "audio/freedesktop/dialog-information.oga",
    "audio/sonic-pi/elec_pop.flac",
    "audio/wesnoth/goblin-die-1.ogg",
    "audio/sonic-pi/ambi_glass_hum.flac",
    "audio/wesnoth/ambient/wardrums.ogg",
]
ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real-sfx-dev"


def main() -> None:
    from soundseek.index.indexer import load_wave
    from soundseek.pipeline import Pipeline

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_batch_exact import REFERENCE_COMMIT, load_reference_encoder

    pipe = Pipeline.from_checkpoint(Path(__file__).resolve().parents[1] / "fixtures" / "default_v1.pt")
    pipe.model.audio_encoder = load_reference_encoder(REFERENCE_COMMIT).from_pretrained().eval()
    embs, frames = [], []
    for c in CLIPS:
        wave, _ = load_wave(ROOT / c, pipe.sample_rate)
        e, f = pipe.embed_audio([wave])
        embs.append(e[0])
        frames.append(np.asarray(pipe.audio_frames([wave])[0][:4], np.float32))  # first frames
    out = Path(__file__).with_name("default_alone.npz")
    np.savez_compressed(out, clips=np.array(CLIPS), emb=np.stack(embs).astype(np.float32),
                        **{f"frames_{i}": f for i, f in enumerate(frames)})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
