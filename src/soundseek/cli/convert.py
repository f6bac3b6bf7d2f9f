"""``soundseek convert``: original checkpoints -> the layout a ``--model family:PATH`` loads."""
from __future__ import annotations

import argparse
import sys

FORMATS = ("laion-clap",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format", choices=FORMATS,
                   help="laion-clap: a laion_clap checkpoint (e.g. 630k-audioset-best.pt) -> a Hugging Face "
                        "ClapModel directory for --model hf-clap:OUT")
    p.add_argument("source", help="the original checkpoint (.pt/.ckpt, read weights-only; or .safetensors)")
    p.add_argument("out", help="new output directory")
    p.add_argument("--config", required=True, metavar="CONFIG",
                   help="ClapConfig config.json (or its directory) of the checkpoint's architecture")
    p.add_argument("--tokenizer", required=True, metavar="DIR",
                   help="directory with the text branch's tokenizer files (RoBERTa: vocab.json, merges.txt, ...)")
    p.add_argument("--preprocessor", default=None, metavar="JSON",
                   help="preprocessor_config.json (or its directory); default: LAION's 48 kHz / 10 s settings")


def run(args: argparse.Namespace) -> int:
    from soundseek.models.laion_clap import convert_laion_clap

    rep = convert_laion_clap(args.source, args.out, config=args.config, tokenizer=args.tokenizer,
                             preprocessor=args.preprocessor)
    print(f"converted {rep['converted']} tensors into {rep['out']} ({len(rep['ignored'])} original keys not part "
          f"of ClapModel left out); use it with --model hf-clap:{rep['out']}", file=sys.stderr)
    return 0
