#!/usr/bin/env bash
# Install soundseek and everything it needs, offline-friendly (PyPI + Debian only).
#   bash scripts/setup.sh          # the package with training and serving extras
#   bash scripts/setup.sh --test   # + test tools (POT, Playwright) and Debian's chromium
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip install --disable-pip-version-check -q"

# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
$PIP torch==2.13.0
if [[ "${1:-}" == "--test" ]]; then
  $PIP -e ".[all]"
else
  $PIP -e ".[train,serve]"
fi
# aisfx pins numpy 1.23 / librosa 0.9, which break the resolver: we use only its packaged
# checkpoint (CC BY 4.0) through our own torch module, so install it without dependencies.
$PIP --no-deps aisfx==0.1.2

# --test: Debian's chromium (browser tests), wavpack and fluidsynth (corpus-builder tests).
if [[ "${1:-}" == "--test" ]]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v wavpack >/dev/null 2>&1 || missing+=(wavpack)
  command -v fluidsynth >/dev/null 2>&1 || missing+=(fluidsynth)
  if (( ${#missing[@]} )); then
    if [[ $(id -u) == 0 ]]; then
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${missing[@]}" >/dev/null) \
        || echo "warning: could not install ${missing[*]}; the tests that need them will be skipped" >&2
    else
      echo "warning: ${missing[*]} missing and not root; the tests that need them will be skipped" >&2
    fi
  fi
fi
$PY -c "import soundseek, torch; print('soundseek', soundseek.__version__, 'torch', torch.__version__)"
