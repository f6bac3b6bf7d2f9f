"""How much of an evaluation set's vocabulary the training captions cover, and how a model's
text-to-audio ranks depend on it.

    python experiments/reserved_coverage.py data/debian-sfx/eval/manifest.jsonl \
        --train data/debian-sfx/train/manifest.jsonl ../shared/data/real-sfx-dev/manifest.jsonl \
        [--model default] [--json out.json]

For every evaluation caption: the MiniLM (all-MiniLM-L6-v2) cosine to its nearest training
caption and that caption, whether any of its content words occurs in a training caption, and the
rank of its own clip when the model ranks every evaluation clip for it (T2A, 1 = first; clips
sharing the caption count as hits, as in ``soundseek eval``). It prints R@1/R@10 per coverage
bucket. Nothing is trained or chosen here: it describes a set and a fixed model. All training
captions of the given manifests count (their test splits too), so the coverage is an upper bound
of what the model saw.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

STOP = frozenset("a an the of on in with and or to from by for at is are it its sound sounds someone".split())
BUCKETS = ((0.8, 1.01, "near-duplicate caption in training (cos >= 0.8)"),
           (0.6, 0.8, "related caption in training (0.6 <= cos < 0.8)"),
           (-1.0, 0.6, "nothing close in training (cos < 0.6)"))


def read_manifest(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for r in rows:
        r["audio_path"] = str((path.parent / r["audio"]).resolve())
    return rows


def words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in STOP and len(w) > 1}


@torch.inference_mode()
def sentence_vectors(texts: list[str], batch: int = 256) -> np.ndarray:
    from soundseek.encoders import build_text_encoder

    enc = build_text_encoder("minilm").eval()
    out = [enc(texts[i:i + batch]).sentence for i in range(0, len(texts), batch)]
    v = torch.cat(out).float()
    return torch.nn.functional.normalize(v, dim=1).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("eval_manifest", type=Path)
    ap.add_argument("--train", type=Path, nargs="+", required=True, help="training manifests")
    ap.add_argument("--model", default="default", help="model spec (default: the shipped model)")
    ap.add_argument("--json", type=Path, help="write the per-caption rows here")
    args = ap.parse_args(argv)

    from soundseek.pipeline import Pipeline

    ev = read_manifest(args.eval_manifest)
    train_caps = sorted({c for m in args.train for r in read_manifest(m) for c in r["captions"]})
    train_words = set().union(*(words(c) for c in train_caps))
    queries = [(i, c) for i, r in enumerate(ev) for c in r["captions"][:1]]  # first caption, as soundseek eval
    texts = [c for _, c in queries]

    tv, qv = sentence_vectors(train_caps), sentence_vectors(texts)
    sim = qv @ tv.T
    nearest = sim.argmax(axis=1)

    pipe = Pipeline.load(args.model)
    audio, _ = pipe.embed_audio([r["audio_path"] for r in ev])
    scores = pipe.embed_text(texts) @ audio.T  # (queries, clips)
    by_text: dict[str, set[int]] = {}
    for i, c in queries:
        by_text.setdefault(c, set()).add(i)
    rows = []
    for q, (i, c) in enumerate(queries):
        order = np.argsort(-scores[q], kind="stable")
        hits = {i}  # its own clip, as soundseek eval (caption_audio)
        rank = 1 + int(next(k for k, j in enumerate(order) if j in hits))
        rows.append({"caption": c, "source": ev[i].get("source", ""), "rank": rank,
                     "nearest_train": train_caps[nearest[q]], "cos": round(float(sim[q, nearest[q]]), 3),
                     "words_seen": sorted(words(c) & train_words), "words_unseen": sorted(words(c) - train_words)})

    def line(name: str, sel: list[dict]) -> str:
        if not sel:
            return f"| {name} | 0 | – | – |"
        r = np.array([x["rank"] for x in sel])
        return f"| {name} | {len(sel)} | {100 * np.mean(r <= 1):.1f} | {100 * np.mean(r <= 10):.1f} |"

    print(f"{len(rows)} evaluation captions, {len(train_caps)} distinct training captions, "
          f"{len(ev)} clips ranked per caption")
    print("| evaluation captions | n | T2A R@1 | T2A R@10 |\n|---|---|---|---|")
    print(line("all", rows))
    for lo, hi, name in BUCKETS:
        print(line(name, [x for x in rows if lo <= x["cos"] < hi]))
    print(line("every content word seen in training", [x for x in rows if x["words_seen"] and not x["words_unseen"]]))
    print(line("some content word never seen", [x for x in rows if x["words_unseen"]]))
    for src in sorted({x["source"] for x in rows}):
        print(line(f"source {src}", [x for x in rows if x["source"] == src]))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
