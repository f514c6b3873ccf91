#!/usr/bin/env bash
# First-frame candidates for a processed dataset split (K seeds, grids, first_frames.txt).
# Usage: scripts/infer_appearance.sh --root DATASET --split val --out outputs/appearance_val [--seeds 0 1 2 3] [--set k=v ...]
# Env: CONFIG (default configs/appearance/flux_dev.yaml, which needs --set model.controlnet_path=<trained branches>:
# without it the script refuses; configs/appearance/tiny.yaml runs on CPU).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""  # explicit: a bare `source` would pass our arguments on
cd "$PAM_ROOT"
python -m appearance_gen.infer dataset --config "${CONFIG:-configs/appearance/flux_dev.yaml}" "$@"
