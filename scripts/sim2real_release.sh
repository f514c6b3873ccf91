#!/usr/bin/env bash
# Sim-to-real from the downloaded released weights: checks the folders, converts the PAM checkpoints once
# (into --cache), then runs 49x480x720 sim2real (CPU offload when the GPU is small). See README,
# "Using the released PAM weights".
# Usage: bash scripts/sim2real_release.sh --pam DIR --flux DIR --cogvideox DIR INPUT... [--out OUT] [--cache DIR]
#        [--config configs/sim2real/pam_release.yaml] [--offload auto|on|off] [--set key=value ...]
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m sim2real.release "$@"
