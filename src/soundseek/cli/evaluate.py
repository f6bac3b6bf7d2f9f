from __future__ import annotations

import argparse
import json

from soundseek.cli.common import TABLE_UNITS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="a soundseek checkpoint (best.pt / last.pt), or 'default' for the shipped model")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help="instead of a checkpoint: a pretrained model from a local directory, e.g. "
                        "hf-clap:models/clap-htsat-unfused (zero-shot baseline, same table)")
    p.add_argument("--data", default=None, metavar="CORPUS",
                   help="corpus to evaluate on (shorthand for --set data.path=CORPUS)")
    p.add_argument("--split", default=None, help="split to evaluate (default: the config's eval.split)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. --set data.path=../clotho --set eval.sk=true")
    p.add_argument("--sk", action="store_true", help="add Sinkhorn-Knopp corrected A2T")
    p.add_argument("--export-bias", default=None, metavar="FILE",
                   help="with --sk: write tau*beta, one search-time bias per caption of the split in corpus "
                        "order (.npy or .txt), for `soundseek index CORPUS --captions --bias FILE`")
    p.add_argument("--ot", action="store_true", help="add OT-plan retrieval")
    p.add_argument("--random", action="store_true", help="add a random-ranking baseline")
    p.add_argument("--relevance", default=None, metavar="CSV",
                   help="multi-positive relevance table (columns caption,clip): adds T2A mAP@16")
    p.add_argument("--submission", default=None, metavar="FILE.csv",
                   help="also write the DCASE retrieval submission of the split: per caption its ten best clips' "
                        "file names (header caption,file_name_1,...,file_name_10, as the task baseline writes it)")
    p.add_argument("--zeroshot", action="store_true",
                   help="zero-shot classification of the split (ESC-50: meta category/fold) instead of retrieval")
    p.add_argument("--template", default="this is a sound of {label}", help="zero-shot prompt template")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--calibrate", nargs="?", const="auto", default=None, metavar="OUT",
                   help="fit the match-confidence calibration of search (strong/possible/weak) on the split's "
                        "captioned clips, which the model must never have trained on, and write it to OUT "
                        "(default: beside the checkpoint, X.pt -> X.calibration.json; family:DIR -> "
                        "DIR/soundseek.calibration.json); prints the precision per band")


def run(args: argparse.Namespace) -> int:
    from soundseek.config import apply_overrides
    from soundseek.models import load
    from soundseek.train.data import prepare
    from soundseek.train.evaluate import evaluate, format_table, random_baseline

    if bool(args.checkpoint) == bool(args.model):
        raise ValueError("give a checkpoint or --model SPEC (e.g. --model hf-clap:DIR), not both or neither")
    model = load(args.model or args.checkpoint)
    sets = (["data.path=" + args.data] if args.data else []) + list(args.set)
    keys = {item.split("=", 1)[0].strip() for item in sets}
    if "data.path" in keys:  # another corpus: the recipe's extra training corpora are not part of it
        sets = [s for k, s in (("data.extra", "data.extra=[]"), ("data.extra_captions", "data.extra_captions="))
                if k not in keys] + sets
    cfg = apply_overrides(model.cfg, sets)
    split = args.split or cfg.eval.split
    if args.calibrate:
        return _calibrate(args, cfg, split)
    if args.export_bias and not (args.sk or cfg.eval.sk):
        raise ValueError("--export-bias needs --sk (or eval.sk=true)")
    data = prepare(cfg, progress=not args.json, towers=(model.audio_encoder, model.text_encoder))
    if args.zeroshot:
        from soundseek.train.evaluate import zero_shot

        z = zero_shot(model, data, model.text_encoder, split=args.split or "all", template=args.template)
        print(json.dumps(z, indent=2, default=float) if args.json else
              f"zero-shot on {args.split or 'all'}: top-1 {100 * z['top1']:.1f}%  mAP {100 * z['mAP']:.1f}%")
        return 0
    m = evaluate(model, data, split, chunk=cfg.eval.chunk, sk=args.sk or cfg.eval.sk, sk_iter=cfg.eval.sk_iter,
                 sk_tau=cfg.eval.sk_tau, sk_split=cfg.data.train_split, ot=args.ot or cfg.eval.ot, ot_reg=cfg.eval.ot_reg,
                 return_bias=bool(args.export_bias))
    beta = m.pop("sk_bias", None)
    if args.export_bias:
        import numpy as np

        folded = (m["sk_tau"] * beta).double().numpy()  # R/tau + beta ranks like R + tau*beta
        np.save(args.export_bias, folded) if args.export_bias.endswith(".npy") else np.savetxt(args.export_bias, folded)
    if args.relevance:
        from soundseek import metrics
        from soundseek.train.evaluate import relevance_table, score_view

        view = data.view(split)
        m["t2a_mAP16"] = float(metrics.multi_positive_map(score_view(model, data, view).numpy(),
                                                          relevance_table(view, args.relevance), k=16))
    if args.submission:
        n = write_split_submission(model, data, split, args.submission, chunk=cfg.eval.chunk)
        if not args.json:
            print(f"wrote {args.submission}: {n} captions x 10 clips")
    base = random_baseline(data.view(split)) if args.random else None
    if args.json:
        if base:
            m["random"] = base
        print(json.dumps(m, indent=2))
    else:
        print(f"{split} split: {m['n_captions']} captions, {m['n_clips']} clips")
        print(format_table(m, base))
        print(TABLE_UNITS)
        if "modality_gap" in m:
            print(f"modality gap: {m['modality_gap']:.3f}")
        if "t2a_mAP16" in m:
            print(f"T2A multi-positive mAP@16: {100 * m['t2a_mAP16']:.1f} %")
    return 0


def submission_names(clips) -> list[str]:
    """The names a submission lists: each clip's file name, as in DCASE (Clotho file names);
    where two clips of the split share a file name, every clip's corpus id instead (unique)."""
    names = [c.audio.name for c in clips]
    return names if len(set(names)) == len(names) else [str(c.id) for c in clips]


def write_split_submission(model, data, split: str, path: str, chunk: int = 256) -> int:
    """Score every caption of ``split`` against every clip and write the DCASE submission CSV."""
    from soundseek.metrics.submission import write_submission
    from soundseek.train.evaluate import score_view

    view = data.view(split)
    scores = score_view(model, data, view, chunk=chunk)
    return write_submission(path, view.captions, submission_names(view.clips), scores)


def _calibrate(args: argparse.Namespace, cfg, split: str) -> int:
    """``eval --calibrate``: fit :mod:`soundseek.index.calibration` on ``split`` and write it."""
    from pathlib import Path

    from soundseek.data.training import ALL, load_training_corpus
    from soundseek.index import calibration
    from soundseek.pipeline import Pipeline

    spec = args.model or args.checkpoint
    corpus = load_training_corpus(cfg)
    clips = corpus.clips if split == ALL else corpus.split(split).clips
    pipe = Pipeline.load(spec)
    names = " + ".join(str(c) for c in [cfg.data.path, *cfg.data.extra])  # every corpus the clips come from
    cal, report = calibration.fit_corpus(pipe, [(c.audio, c.captions) for c in clips if c.captions],
                                         info={"model": str(spec), "corpus": names, "split": split},
                                         progress=not args.json)
    out = Path(calibration.path_for(spec) if args.calibrate == "auto" else args.calibrate)
    cal.save(out)
    if args.json:
        print(json.dumps({"calibration": str(out), "w": cal.w, **report}, indent=2))
    else:
        print(f"calibration of {spec} on the {split} split of {names}: {cal.info['queries']} caption queries, "
              f"{cal.info['clips']} clips -> {out}")
        print(calibration.format_report(report))
    return 0
