"""Semantic vs text vs hybrid search per query class, on a labelled folder with its real file
names and on a copy renamed to terse, UCS-style names (abbreviated, run-together CamelCase:
``ambient dark woosh`` -> ``AMB_AmbDarkWhsh_001.flac``), with the shipped default model.

Query classes (queries from the manifest's captions; relevant: the clips with that caption):
single word (one-word captions), modifier phrase (a generic modifier put before the caption:
"loud bass drum"), compound (captions of two or more words), abbreviation (captions holding a
word the vocabulary abbreviates: bass drum, ambient, whoosh, footsteps, ...). Percent R@10 and
mAP@10; hybrid rows at several text weights.

    PYTHONPATH=src python experiments/query_classes.py ../shared/data/real-sfx-dev --work /tmp/qc
"""
from __future__ import annotations

import argparse
import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

MODIFIERS = ("loud", "small", "heavy", "short")


def metrics(ranked, relevant):
    r10, ap = [], []
    for hits, rel in zip(ranked, relevant):
        top = hits[:10]
        r10.append(float(any(h in rel for h in top)))
        found, s = 0, 0.0
        for i, h in enumerate(top, 1):
            if h in rel:
                found += 1
                s += found / i
        ap.append(s / min(len(rel), 10))
    return 100 * float(np.mean(r10)), 100 * float(np.mean(ap))


def terse(caption: str, i: int, ext: str) -> str:
    from soundseek.index.vocab import SYNONYMS, canonical

    short = {canon: alts[0] for canon, alts in SYNONYMS.items()}
    words, out, j = caption.lower().split(), [], 0
    while j < len(words):
        two = " ".join(words[j:j + 2])
        if two in short:
            out.append(short[two]); j += 2
        else:
            out.append(short.get(canonical(words[j]) or words[j], words[j][:4])); j += 1
    return f"{out[0].upper()}_{''.join(w.capitalize() for w in out)}_{i:03d}{ext}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--work", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--weights", type=float, nargs="*", default=[0.5, 0.7])
    args = ap.parse_args()
    from soundseek.index import Searcher, build_index
    from soundseek.index.vocab import SYNONYMS
    from soundseek.pipeline import Pipeline

    corpus, work = Path(args.corpus), Path(args.work)
    rows = [json.loads(ln) for ln in (corpus / "manifest.jsonl").read_text().splitlines() if ln.strip()]
    work.mkdir(parents=True, exist_ok=True)
    renamed = work / "terse"
    names = [terse(r["captions"][0], i, Path(r["audio"]).suffix) for i, r in enumerate(rows)]
    if not renamed.is_dir():
        renamed.mkdir()
        for r, n in zip(rows, names):
            shutil.copyfile(corpus / r["audio"], renamed / n)
    by_caption = defaultdict(set)
    for i, r in enumerate(rows):
        by_caption[r["captions"][0]].add(i)
    abbreviated = {w for canon, alts in SYNONYMS.items() for w in (canon, *alts)}
    classes = {
        "single word": [(c, c) for c in by_caption if len(c.split()) == 1],
        "modifier phrase": [(f"{MODIFIERS[i % 4]} {c}", c) for i, c in enumerate(sorted(by_caption))],
        "compound": [(c, c) for c in by_caption if len(c.split()) >= 2],
        "abbreviation": [(c, c) for c in by_caption
                         if any(w in abbreviated or " ".join(c.split()[j:j + 2]) in abbreviated
                                for j, w in enumerate(c.split()))],
    }
    emb = Pipeline.load(args.model)
    views = {"real names": (corpus / Path(rows[0]["audio"]).parts[0], lambda i: rows[i]["audio"].split("/", 1)[1]),
             "terse UCS-style names": (renamed, lambda i: names[i])}
    runs = [("semantic", None), ("text", None)] + [("hybrid", w) for w in args.weights]
    out = {}
    print("| names | class | queries | " + " | ".join(f"{m}{'' if w is None else f' w={w}'} R@10 / mAP@10" for m, w in runs) + " |")
    print("|---|---|---|" + "---|" * len(runs))
    for view, (root, key_of) in views.items():
        idx = work / ("idx-" + view.split()[0])
        build_index(root, emb, idx, progress=False)
        s = Searcher(idx, emb)
        for cls, qs in classes.items():
            queries = [q for q, _ in qs]
            relevant = [{key_of(i) for i in by_caption[c]} for _, c in qs]
            cells = []
            for mode, w in runs:
                res = s.search_batch(queries, k=10, mode=mode, text_weight=w)
                r10, m = metrics([[h["path"] for h in hits] for hits in res], relevant)
                out[f"{view}|{cls}|{mode}|{w}"] = (r10, m)
                cells.append(f"{r10:.1f} / {m:.1f}")
            print(f"| {view} | {cls} | {len(queries)} | " + " | ".join(cells) + " |", flush=True)
    (work / "query_classes.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
