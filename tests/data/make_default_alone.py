"""Writes ``default_alone.npz``: embeddings of a few real-sfx-dev clips, each embedded *alone*
with the shipped default model (``Pipeline.default()``), as reference vectors.

The file was made with the encoders as they were before their batched computation became
valid-length exact (commit c82f493), so that the test comparing against it checks that a clip
embedded alone keeps its vector. Run from the repository root, with ``src`` of that commit on
``PYTHONPATH``: ``PYTHONPATH=<old>/src python3 tests/data/make_default_alone.py``.
"""
from __future__ import annotations

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

    pipe = Pipeline.default()
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
