#!/usr/bin/env bash
# Rebuild the default model shipped in the package (src/soundseek/assets/default.pt).
# Needs: the package installed (scripts/setup.sh), ../shared/data/real-sfx-dev beside the repo,
# and apt-get/dpkg for the Debian corpus (downloaded once into data/debian-sfx, ~5 min).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -f data/debian-sfx/train/manifest.jsonl ]]; then
  python3 -m soundseek prepare debian data/debian-sfx/train --cache data/debian-sfx/cache \
    --avoid ../shared/data/real-sfx-dev/manifest.jsonl
fi
python3 -m soundseek train configs/default-model.yaml --restart "$@"
python3 - <<'PY'
from soundseek.train.checkpoint import export_inference
export_inference("runs/default-model/best.pt", "src/soundseek/assets/default.pt")
print("wrote src/soundseek/assets/default.pt")
PY
# Generalisation: the real-sfx-dev test split (never trained on) ...
python3 -m soundseek eval src/soundseek/assets/default.pt --split test --random \
  --set data.path=../shared/data/real-sfx-dev/manifest.jsonl --set "data.extra=[]"
# ... and the reserved Debian evaluation corpus (openttd-opensfx + tuxpaint-stamps), if built:
if [[ -f data/debian-sfx/eval/manifest.jsonl ]]; then
  python3 -m soundseek eval src/soundseek/assets/default.pt --split all --random \
    --set data.path=data/debian-sfx/eval/manifest.jsonl --set "data.extra=[]"
fi
