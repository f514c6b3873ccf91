#!/usr/bin/env bash
# Appearance step time vs the base FLUX transformer alone. Default: tiny config on CPU.
# --real: FLUX.1-dev sizes with random weights, bf16, 480x720 on a GPU (with and without gradient checkpointing).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a bare `source` would pass our arguments on
cd "$PAM_ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if [[ " $* " == *" --real "* ]]; then
  python -m appearance_gen.bench "$@"
  python -m appearance_gen.bench --gradient-checkpointing "$@"
else
  python -m appearance_gen.bench "$@"
fi
