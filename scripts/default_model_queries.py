"""Free-text queries against the held-out clips of a corpus, as a new user would try them.

    python3 scripts/default_model_queries.py [MODEL] [--corpus MANIFEST] [--split test] [QUERY ...]

Prints, for each query, the captions of the top-5 clips of the split (features from the cache).
Default: the shipped model on the test split of the Debian training corpus (clips never trained on).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

QUERIES = ["a dog barking", "footsteps on gravel", "glass breaking", "horse neighing", "crowd cheering",
           "a violin playing a slow melody", "a cat meowing", "an explosion", "a door closing", "rain",
           "a person speaking", "a car engine", "a bird singing", "a telephone ringing", "water splashing",
           "a laser gun", "a drum roll", "someone knocking", "a cow mooing", "a piano chord"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", nargs="?", default="src/soundseek/assets/default.pt")
    p.add_argument("--corpus", default="data/debian-sfx/train/manifest.jsonl")
    p.add_argument("--split", default="test")
    p.add_argument("queries", nargs="*")
    a = p.parse_args()
    from soundseek.config import apply_overrides
    from soundseek.pipeline import Pipeline
    from soundseek.train.data import prepare

    pipe = Pipeline.from_checkpoint(a.model)
    cfg = apply_overrides(pipe.cfg, [f"data.path={a.corpus}", "data.extra=[]"])
    data = prepare(cfg, progress=False)
    view = data.view(a.split)
    embs = []
    with torch.inference_mode():
        for s in range(0, view.n_clips, 256):
            frames, fmask = data.audio.batch(view.clip_rows[s: s + 256])
            rep = pipe.model.encode_audio(frames.float(), fmask)
            embs.append(torch.nn.functional.normalize(rep["emb"].float(), dim=-1).numpy())
    audio = np.concatenate(embs)
    queries = a.queries or QUERIES
    text = pipe.embed_text(queries)
    print(f"{view.n_clips} clips of the {a.split} split of {a.corpus}")
    for q, row in zip(queries, text @ audio.T):
        top = np.argsort(-row)[:5]
        print(f"{q!r}: " + " | ".join(view.clips[i].captions[0] for i in top))


if __name__ == "__main__":
    main()
