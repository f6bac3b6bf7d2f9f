"""Semantic vs text vs hybrid search on a labelled folder, with the original file names and
with the names hidden (files copied under neutral names ``clip_0000.ext``), using the shipped
default model.

Queries are the distinct captions of the manifest; the relevant clips of a query are all
clips with that caption. Metrics are fractions (printed as percent): R@1 (top hit relevant),
R@10 (a relevant clip in the top 10), mAP@10.

    PYTHONPATH=src python experiments/search_modes.py ../shared/data/real-sfx-dev --work /tmp/modes \
        --weights 0.3 0.7 0.9
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def metrics(ranked: list[list[str]], relevant: list[set[str]]) -> dict[str, float]:
    r1, r10, ap = [], [], []
    for hits, rel in zip(ranked, relevant):
        top = hits[:10]
        r1.append(float(bool(top) and top[0] in rel))
        r10.append(float(any(h in rel for h in top)))
        found, s = 0, 0.0
        for i, h in enumerate(top, 1):
            if h in rel:
                found += 1
                s += found / i
        ap.append(s / min(len(rel), 10))
    return {"R1": float(np.mean(r1)), "R10": float(np.mean(r10)), "mAP10": float(np.mean(ap))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", help="folder with manifest.jsonl ({audio, captions})")
    ap.add_argument("--work", required=True, help="scratch folder (indexes, the renamed copy)")
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped model)")
    ap.add_argument("--weights", type=float, nargs="*", default=[], help="extra hybrid rows at these text weights")
    args = ap.parse_args()
    from soundseek.index import Searcher, build_index
    from soundseek.pipeline import Pipeline

    corpus, work = Path(args.corpus), Path(args.work)
    rows = [json.loads(line) for line in (corpus / "manifest.jsonl").read_text().splitlines() if line.strip()]
    work.mkdir(parents=True, exist_ok=True)
    hidden = work / "hidden"
    if not hidden.is_dir():
        hidden.mkdir()
        for i, r in enumerate(rows):
            src = corpus / r["audio"]
            shutil.copyfile(src, hidden / f"clip_{i:04d}{src.suffix}")
    emb = Pipeline.load(args.model)
    by_caption: dict[str, set[int]] = defaultdict(set)
    for i, r in enumerate(rows):
        by_caption[r["captions"][0]].add(i)
    queries = sorted(by_caption)
    views = {"original names": (corpus / Path(rows[0]["audio"]).parts[0], lambda i: rows[i]["audio"].split("/", 1)[1]),
             "names hidden": (hidden, lambda i: f"clip_{i:04d}{Path(rows[i]['audio']).suffix}")}
    print(f"{len(rows)} clips, {len(queries)} distinct captions as queries; model {args.model or 'default'}\n")
    print("| file names | mode | R@1 % | R@10 % | mAP@10 % | ms/query |")
    print("|---|---|---|---|---|---|")
    out = {}
    for view, (root, key_of) in views.items():
        idx = work / ("idx-" + view.replace(" ", "-"))
        build_index(root, emb, idx, progress=False)
        s = Searcher(idx, emb)
        relevant = [{key_of(i) for i in by_caption[q]} for q in queries]
        runs = [("semantic", None), ("text", None), ("hybrid", None)] + [("hybrid", w) for w in args.weights]
        for mode, w in runs:
            t0 = time.perf_counter()
            res = s.search_batch(queries, k=10, mode=mode, text_weight=w)
            ms = 1000 * (time.perf_counter() - t0) / len(queries)
            m = metrics([[h["path"] for h in hits] for hits in res], relevant)
            name = mode if w is None else f"hybrid, text weight {w}"
            out[f"{view}/{name}"] = m
            print(f"| {view} | {name} | {100 * m['R1']:.1f} | {100 * m['R10']:.1f} | {100 * m['mAP10']:.1f} | {ms:.1f} |")
    (work / "search_modes.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
