#!/usr/bin/env bash
# Sim-to-real: sim folders / trajectories -> first frame (appearance) -> video (motion), with manifests.
# Usage: bash scripts/sim2real.sh INPUT... [--out outputs/sim2real] [--config configs/sim2real/tiny.yaml]
#        [--shard i/n] [--stage appearance] [--first-frames chosen.txt] [--set key=value ...]
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
python -m sim2real.run "$@"
