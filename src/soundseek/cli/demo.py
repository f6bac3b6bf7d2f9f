"""``soundseek demo``: the main job. Synthetic (or given) corpus -> cached features -> train
-> held-out metrics next to random ranking -> top-5 clips for a few text queries."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from soundseek.cli.common import TABLE_UNITS

DEMO_QUERIES = [
    "three short high beeps",
    "a low hum",
    "a loud burst of noise",
    "a rising sweep",
    "a bell rings, then a knock",
]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default="", help="a corpus (manifest, Clotho, ...) instead of the built-in synthetic one")
    p.add_argument("--format", default="auto")
    p.add_argument("--workdir", default="soundseek-demo", help="where the corpus, cache and run go (default: ./soundseek-demo)")
    p.add_argument("--config", default="", help="a recipe to start from (default: the offline default model)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override config values")
    p.add_argument("--query", action="append", default=[], help="text queries to show (repeatable)")
    p.add_argument("--serve", action="store_true", help="end by serving the test clips in the web page")
    p.add_argument("--port", type=int, default=8000)


def demo_config(args: argparse.Namespace):
    from soundseek.config import apply_overrides, load_yaml
    from soundseek.models.config import Config

    wd = Path(args.workdir)
    base = load_yaml(Config, args.config) if args.config else Config()
    sets = [f"data.cache_dir={wd / 'cache'}", f"train.out_dir={wd / 'run'}", "train.epochs=25"]
    if args.data:
        sets += [f"data.path={args.data}", f"data.format={args.format}"]
    return apply_overrides(base, sets + list(args.set))


def run(args: argparse.Namespace) -> int:
    import torch

    from soundseek.train.data import prepare
    from soundseek.train.evaluate import encode_view, evaluate, format_table, random_baseline
    from soundseek.train.loop import Trainer, load_run

    t0 = time.time()
    cfg = demo_config(args)
    print(f"[1/4] corpus and cached features ({cfg.data.path or 'built-in synthetic corpus'})")
    data = prepare(cfg)
    for name, v in sorted(data.splits.items()):
        print(f"      {name}: {v.n_clips} clips, {v.n_captions} captions")
    print(f"[2/4] training ({cfg.model.scorer} scorer, {cfg.loss.name} loss, {cfg.train.epochs} epochs)")
    result = Trainer(cfg, data).fit(resume=True)
    model, _, _ = load_run(Path(result["out_dir"]) / "best.pt", towers=data.towers)
    split = cfg.eval.split if cfg.eval.split in data.splits else cfg.data.val_split
    print(f"[3/4] held-out evaluation on the {split} split")
    m = evaluate(model, data, split, chunk=cfg.eval.chunk)
    print(format_table(m, random_baseline(data.view(split))))
    print(TABLE_UNITS)
    print("[4/4] text queries against the held-out clips")
    view = data.view(split)
    queries = args.query or (DEMO_QUERIES if not cfg.data.path else view.captions[:: max(1, len(view.captions) // 5)][:5])
    _, audio = encode_view(model, data, view)
    with torch.inference_mode():
        scores = model.score(model.encode_captions(list(queries)), audio).float()
    for q, row in zip(queries, scores):
        print(f"\n  query: {q!r}")
        for rank, j in enumerate(torch.argsort(row, descending=True, stable=True)[:5].tolist(), 1):
            clip = view.clips[j]
            print(f"    {rank}. {row[j]:+.3f}  {clip.captions[0]!r}  ({clip.audio.name})")
    print(f"\ndone in {time.time() - t0:.0f} s; checkpoint: {result['out_dir']}/best.pt")
    if args.serve:
        serve_demo(cfg, data, Path(result["out_dir"]) / "best.pt", Path(args.workdir) / "index", args.port)
    return 0


def serve_demo(cfg, data, checkpoint: Path, index_dir: Path, port: int) -> None:
    """Index the demo corpus with the trained model and open it in the web page."""
    from soundseek.index import build_index
    from soundseek.pipeline import Pipeline
    from soundseek.service.app import serve

    from soundseek.data.training import synthetic_root

    source = cfg.data.path or str(synthetic_root(cfg) / "manifest.jsonl")
    pipe = Pipeline.from_checkpoint(checkpoint)
    build_index(source, pipe, index_dir, model=str(checkpoint), rebuild=False)  # prints its summary
    print(f"serving the demo corpus at http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    serve(index_dir, pipe, host="127.0.0.1", port=port)
