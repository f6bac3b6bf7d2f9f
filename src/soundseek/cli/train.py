from __future__ import annotations

import argparse
import json

from soundseek.cli.common import TABLE_UNITS, add_config_args, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p)
    p.add_argument("--restart", action="store_true", help="ignore an existing last.pt in train.out_dir")
    p.add_argument("--no-eval", action="store_true", help="skip the final test-split evaluation")


def run(args: argparse.Namespace) -> int:
    from soundseek.train.data import prepare
    from soundseek.train.evaluate import evaluate, format_table
    from soundseek.train.loop import Trainer, load_run

    from soundseek import distributed as dist

    cfg = load_config(args)
    # torchrun: each rank encodes its share of the missing features, then reads the whole cache
    data = prepare(cfg, progress=cfg.train.progress and dist.is_main())
    trainer = Trainer(cfg, data)
    result = trainer.fit(resume=not args.restart)
    if not dist.is_main():
        return 0
    print(f"best validation {cfg.train.monitor}: {result['best']:.4f}  ({result['out_dir']}/best.pt)")
    if not args.no_eval and cfg.eval.split in data.splits:
        model, _, _ = load_run(f"{result['out_dir']}/best.pt", towers=data.towers)
        model.to(trainer.device)  # the checkpoint loads on the CPU; live towers may be on a GPU
        m = evaluate(model, data, cfg.eval.split, chunk=cfg.eval.chunk, sk=cfg.eval.sk, sk_iter=cfg.eval.sk_iter,
                     sk_tau=cfg.eval.sk_tau, sk_split=cfg.data.train_split, ot=cfg.eval.ot, ot_reg=cfg.eval.ot_reg)
        print(f"\n{cfg.eval.split} split ({m['n_captions']} captions, {m['n_clips']} clips):")
        print(format_table(m))
        print(TABLE_UNITS)
        with open(f"{result['out_dir']}/test_metrics.json", "w", encoding="utf-8") as f:
            json.dump(m, f, indent=2)
    return 0
