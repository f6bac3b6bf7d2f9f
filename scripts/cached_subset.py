"""Write the part of a manifest whose audio features are already in the feature cache.

    python3 scripts/cached_subset.py configs/default-model.yaml data/debian-sfx/train/manifest.jsonl \
        data/debian-sfx/train/manifest-cached.jsonl

Used when feature extraction of a large corpus cannot finish in the time at hand: training on the
cached subset (the written manifest sits beside the original, so clip ids and cached features are
the same) is an honest, smaller version of the full recipe. The corpus must be ``data.path`` (the
first corpus) of the config, as in ``configs/default-model.yaml``.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path


def _sha1(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def main(config: str, manifest: str, out: str) -> None:
    from soundseek.config import load_yaml
    from soundseek.train.config import Config

    cfg = load_yaml(Config, config)
    root = Path(cfg.data.cache_dir) / "features" / "audio"
    entries: set[str] = set()
    for shard in root.glob("*/shard-*.json"):
        meta = json.loads(shard.read_text())
        entries.update(meta.get("entries", meta).keys() if isinstance(meta, dict) else ())
    src = Path(manifest)
    kept = []
    lines = [x for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]
    for line in lines:
        row = json.loads(line)
        audio = src.parent / row["audio"]
        st = audio.stat()
        if _sha1([row["audio"], st.st_size, st.st_mtime_ns]) in entries:
            kept.append(line)
    # the subset keeps the corpus rule: at most 15 % speech (same hash order as the builder's cap)
    from soundseek.data.debian import SPEECH_SHARE

    rows = [json.loads(x) for x in kept]
    speech = [r for r in rows if "speech" in r.get("tags", ())]
    allowed = int(SPEECH_SHARE * (len(rows) - len(speech)) / (1 - SPEECH_SHARE))
    order = sorted(speech, key=lambda r: hashlib.sha1(r["audio"].encode()).hexdigest())
    drop = {r["audio"] for r in order[allowed:]}
    kept = [x for x, r in zip(kept, rows) if r["audio"] not in drop]
    Path(out).write_text("".join(x + "\n" for x in kept), encoding="utf-8")
    print(f"{len(kept)} of {len(lines)} clips have cached features ({len(drop)} speech clips over the "
          f"{SPEECH_SHARE:.0%} cap left out) -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
