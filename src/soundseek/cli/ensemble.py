"""``soundseek ensemble``: join trained checkpoints into one model that scores by their mean cosine
(``--project P``: with P-wide vectors fitted on training data), or take one member back out of an
ensemble (``--member K``: K-times narrower vectors)."""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", nargs="+",
                   help="member checkpoints (best.pt of runs with the same frozen towers); with --member, "
                        "one ensemble checkpoint ('default': the shipped model)")
    p.add_argument("--out", required=True, help="checkpoint to write (e.g. runs/ensemble.pt)")
    p.add_argument("--member", type=int, default=None, metavar="K",
                   help="write member K of the one ensemble given instead of joining (0 = the first)")
    p.add_argument("--project", type=int, default=0, metavar="P",
                   help="store P-wide vectors instead of the concatenation: a projection fitted on the clips and "
                        "captions of --fit-split of the members' corpus (default: no projection)")
    p.add_argument("--fit-split", default="train", help="split the projection is fitted on (default: train)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the first member's recipe for the fit, e.g. --set data.cache_dir=...")


def run(args: argparse.Namespace) -> int:
    from soundseek.config import ConfigError
    from soundseek.models.ensemble import combine, extract

    if args.member is None and args.project:
        from soundseek.models.ensemble import ensemble_payload, fit_projection, project_payload, write
        from soundseek.train.project import split_vectors

        payload = ensemble_payload(args.checkpoints)
        vectors = split_vectors(payload, args.fit_split, args.set)
        model = write(project_payload(payload, fit_projection(vectors, args.project)), args.out)
        print(f"wrote {args.out}: ensemble of {len(args.checkpoints)} models, {args.project}-d vectors projected from "
              f"{vectors.shape[1]}-d (fitted on {vectors.shape[0]} {args.fit_split} clips and captions)")
        return 0
    if args.member is None:
        model = combine(args.checkpoints, args.out)
        print(f"wrote {args.out}: ensemble of {len(args.checkpoints)} models, {model.scorer.embed_dim}-d vectors "
              f"(the mean of the members' cosines)")
        return 0
    if len(args.checkpoints) != 1:
        raise ConfigError(f"--member takes one ensemble checkpoint, got {len(args.checkpoints)}")
    src = args.checkpoints[0]
    if src == "default":
        from soundseek.models.factory import DEFAULT_CHECKPOINT

        src = DEFAULT_CHECKPOINT
    model = extract(src, args.member, args.out)
    print(f"wrote {args.out}: member {args.member} of {args.checkpoints[0]}, {model.scorer.embed_dim}-d vectors")
    return 0
