#!/usr/bin/env bash
# Full sim-to-real demo on the built-in procedural sample (procedural hand grasps a built-in object -> CPU render
# -> appearance -> motion, models trained on the procedural world in assets/toy_world/); outputs under outputs/demo/.
# Usage: bash scripts/demo.sh [extra args for python -m sim2real.demo, see --help]
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
# the models trained on the procedural HOI world (assets/toy_world/), rendered as that world; --config
# configs/sim2real/tiny.yaml (with --height 240 --width 360) runs the random tiny models instead
python -m sim2real.demo --out outputs/demo --config configs/sim2real/toy_world.yaml --frames 17 --height 96 \
  --width 144 --camera-distance 0.37 "$@"
