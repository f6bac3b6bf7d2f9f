"""Compare recipes for the default model on (a) the held-out test split of the Debian training
corpus and (b) the held-out real-sfx-dev test split, never on the reserved OpenTTD + Tux Paint set.

    python3 scripts/default_model_variants.py                     # every variant, seed 0
    python3 scripts/default_model_variants.py base sigmoid --seeds 0 1 2
    python3 scripts/default_model_variants.py --table             # markdown table of what was run
    python3 scripts/default_model_variants.py --ensemble ens-label3 label-s0 label-s1 label-s2

Each run trains ``configs/default-model.yaml`` with the variant's overrides into
``runs/variants/<variant>-s<seed>`` (features come from the shared cache) and appends the T2A/A2T
metrics of both evaluations to ``results/default-model-variants.jsonl`` (or ``$VARIANTS_OUT``,
relative to the repository: one file per round of comparisons).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / os.environ.get("VARIANTS_OUT", "results/default-model-variants.jsonl")
VARIANTS: dict[str, list[str]] = {
    "base": ["train.positives_by=clip"],                            # mean+max, NT-Xent (t = 0.05), clip positives
    "label": ["train.positives_by=label"],                          # multi-positive: clips sharing a label (the recipe)
    "sigmoid": ["loss.name=sigmoid", "loss.options={}"],            # SigLIP-style pairwise sigmoid
    "attention": ["model.options={pooling: attention, dropout: 0.1, pooling_options: {residual_mean: true}}"],
    "netrvlad": ["model.options={pooling: netrvlad, dropout: 0.1}"],  # learned cluster pooling
    "reg": ["model.options={pooling: meanmax, dropout: 0.3}", "optim.weight_decay=0.05"],  # stronger regularisation
    # category features: aisfx's frozen classifier heads (9 sound-effects libraries) on the clip
    "categories": ["model.options={pooling: meanmax, dropout: 0.1, categories: aisfx-probs}"],
    "categories-hidden": ["model.options={pooling: meanmax, dropout: 0.1, categories: aisfx-hidden}"],
    # locked text space (LiT-style): MiniLM's own sentence space is the shared space
    "text-identity": ["model.embed_dim=384", "model.options={pooling: meanmax, dropout: 0.1, text_head: identity}"],
    "text-linear": ["model.options={pooling: meanmax, dropout: 0.1, text_head: linear}"],
    "specaug": ["train.spec_augment=true"],                          # time/channel masking of the cached frames
    # ensemble distillation (Primus et al.): a single student learns the mean logits of the label
    # recipe's seeds; teachers first: soundseek distill runs/variants/label-s{0,1,2}/best.pt --out runs/teachers-label3.pt
    "distill3": ["loss.distill=runs/teachers-label3.pt"],
    "distill5": ["loss.distill=runs/teachers-label5.pt"],                 # seeds 0-4
    # the last aisfx block tuned end to end (live audio, 3 s random crops) under the label recipe's
    # trained heads (run label first); no per-epoch validation: the audio tower runs live
    "audio-tune": ["encoders.audio_unlocked_blocks=1", "train.init_from=runs/variants/label-s0/best.pt",
                   "optim.lr=1.0e-4", "optim.warmup_epochs=0", "train.crop_seconds=3", "data.val_split=none"],
    "wide": ["model.embed_dim=1024"],                                # a larger shared space (d = 1024)
    "no-synthetic": ["data.extra=[../shared/data/real-sfx-dev/manifest.jsonl]"],
    "mpnet": ["encoders.text=hf"],                                  # + encoders.text_path from $MPNET_DIR
    # light text-tower tuning: the last MiniLM block trains (the checkpoint keeps only that block)
    "text-tune": ["encoders.text_unlocked_blocks=1", "optim.lr_groups={text_encoder: 2.0e-5}"],
}
# "a+b" runs the overrides of a and b together (e.g. label+text-tune)
EVALS = {"corpus": "data/debian-sfx/train/manifest.jsonl", "real-sfx-dev": "../shared/data/real-sfx-dev/manifest.jsonl"}


def overrides(variant: str) -> list[str]:
    return [x for part in variant.split("+") for x in VARIANTS[part]]


def run(variant: str, seed: int, epochs: int) -> dict:
    run_dir = f"runs/variants/{variant}-s{seed}" + ("" if epochs == 30 else f"-e{epochs}")
    out = f"{run_dir}/best.pt"
    sets = overrides(variant) + [f"train.seed={seed}", f"train.epochs={epochs}",
                                f"train.out_dir={run_dir}", "train.progress=false"]
    if "mpnet" in variant.split("+"):
        path = os.environ.get("MPNET_DIR")
        if not path:
            raise SystemExit("mpnet: set MPNET_DIR to an all-mpnet-base-v2 Hugging Face directory")
        sets.append(f"encoders.text_path={path}")
    cmd = [sys.executable, "-m", "soundseek", "train", "configs/default-model.yaml", "--restart"]
    for s in sets:
        cmd += ["--set", s]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return evaluate(out, {"variant": variant, "seed": seed, "epochs": epochs})


def ensemble(name: str, members: list[str]) -> dict:
    """Join trained variant runs (``label-s0`` ...) with ``soundseek ensemble`` and evaluate them."""
    out = f"runs/variants/{name}-s0/best.pt"
    (ROOT / out).parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "soundseek", "ensemble", *[f"runs/variants/{m}/best.pt" for m in members], "--out", out]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return evaluate(out, {"variant": name, "seed": 0, "members": members})


def evaluate(checkpoint: str, row: dict) -> dict:
    for name, path in EVALS.items():
        cmd = [sys.executable, "-m", "soundseek", "eval", checkpoint, "--split", "test",
               "--json", "--set", f"data.path={path}", "--set", "data.extra=[]"]
        out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True).stdout
        row[name] = json.loads(out[out.index("{"):])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("a") as f:
        f.write(json.dumps(row) + "\n")
    return row


def _get(d: dict, direction: str, metric: str) -> float | None:
    for key in (direction, direction.lower(), direction.upper()):
        if isinstance(d.get(key), dict) and metric in d[key]:
            return float(d[key][metric])
    for key in (f"{direction}.{metric}", f"{direction}_{metric}"):
        if key in d:
            return float(d[key])
    return None


def table() -> str:
    rows = [json.loads(x) for x in OUT.read_text().splitlines() if x.strip()]
    by: dict[str, list[dict]] = {}
    for r in rows:  # a run with other than the recipe's 30 epochs is its own row
        key = r["variant"] if r.get("epochs", 30) == 30 else f"{r['variant']} ({r['epochs']} epochs)"
        by.setdefault(key, []).append(r)
    cols = [(e, d, m) for e in EVALS for d, m in (("t2a", "R1"), ("t2a", "R10"), ("t2a", "mAP10"), ("a2t", "R1"))]
    head = "| variant | seeds | " + " | ".join(f"({'a' if e == 'corpus' else 'b'}) {d.upper()} {m}" for e, d, m in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for v, rs in by.items():
        cells = []
        for e, d, m in cols:
            vals = [100 * x for x in (_get(r[e], d, m) for r in rs) if x is not None]  # percent
            if not vals:
                cells.append("–")
            elif len(vals) == 1:
                cells.append(f"{vals[0]:.1f}")
            else:
                cells.append(f"{statistics.mean(vals):.1f} ± {statistics.stdev(vals):.1f}")
        lines.append(f"| {v} | {','.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="*", default=list(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--table", action="store_true", help="print the markdown table of results so far")
    p.add_argument("--ensemble", metavar="NAME", help="join the runs named as variants (e.g. label-s0 label-s1) "
                   "into the ensemble runs/variants/NAME-s0 and evaluate it")
    a = p.parse_args()
    if a.table:
        print(table())
        return
    if a.ensemble:
        ensemble(a.ensemble, a.variants)
        print(table())
        return
    for v in a.variants:
        if any(part not in VARIANTS for part in v.split("+")):
            raise SystemExit(f"unknown variant {v!r}; valid: {', '.join(VARIANTS)}")
    for v in a.variants:
        for s in a.seeds:
            run(v, s, a.epochs)
    print(table())


if __name__ == "__main__":
    main()
