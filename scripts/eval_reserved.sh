#!/usr/bin/env bash
# The reserved, independent evaluation: openttd-opensfx + tuxpaint-stamps-* (never trained or
# tuned on). Builds data/debian-sfx/eval once (no file shared with real-sfx-dev or the training
# corpus) and evaluates a model on all of it.
#   bash scripts/eval_reserved.sh [--mode semantic] [MODEL]   # default: src/soundseek/assets/default.pt
# The measurement is the model's own ranking (semantic mode): the reserved OGGs carry title tags,
# so a hybrid search would find half of them by their tags alone and say nothing about the model.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ${1:-} == --mode ]]; then
  if [[ ${2:-} != semantic ]]; then
    echo "eval_reserved.sh measures the model's ranking only: --mode semantic (got ${2:-nothing})" >&2; exit 2
  fi
  shift 2
fi
M=${1:-src/soundseek/assets/default.pt}
if [[ ! -f data/debian-sfx/eval/manifest.jsonl ]]; then
  avoid=(../shared/data/real-sfx-dev/manifest.jsonl)
  [[ -f data/debian-sfx/train/manifest.jsonl ]] && avoid+=(data/debian-sfx/train/manifest.jsonl)
  python3 -m soundseek prepare debian data/debian-sfx/eval --eval --avoid "${avoid[@]}"
fi
python3 -m soundseek eval "$M" --split all --random \
  --set data.path=data/debian-sfx/eval/manifest.jsonl --set "data.extra=[]"
