from __future__ import annotations

import argparse

from soundseek.cli.common import add_config_args, load_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p, required=False)


def run(args: argparse.Namespace) -> int:
    from soundseek.train.data import prepare

    from soundseek import distributed as dist

    cfg = load_config(args)
    data = prepare(cfg, progress=True)  # torchrun: each rank encodes its share of the corpus
    if not dist.is_main():
        return 0
    failed = getattr(data.audio, "failed", {}) or {}
    print(f"cached {len(data.corpus)} clips ({len(failed)} failed) and their captions in {cfg.data.cache_dir}/features")
    for cid, why in sorted(failed.items()):
        print(f"  failed: {cid}: {why}")
    for name, v in data.splits.items():
        print(f"  {name}: {v.n_clips} clips, {v.n_captions} captions")
    return 0
