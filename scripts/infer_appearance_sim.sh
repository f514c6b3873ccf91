#!/usr/bin/env bash
# First-frame candidates for sim folders (rendered_{map}_{i}.png): K seeds each, grids, first_frames.txt for the motion stage.
# Usage: scripts/infer_appearance_sim.sh SIM_FOLDER [SIM_FOLDER ...] --out outputs/appearance_sim [--choice NAME=SEED ...]
# Env: CONFIG (default configs/appearance/flux_dev.yaml, which needs --set model.controlnet_path=<trained branches>:
# without it the script refuses; configs/appearance/tiny.yaml runs on CPU).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a bare `source` would pass our arguments on
cd "$PAM_ROOT"
python -m appearance_gen.infer sim --config "${CONFIG:-configs/appearance/flux_dev.yaml}" "$@"
