#!/usr/bin/env bash
# The procedural HOI world: N train + M held-out grasp sequences in the official DexYCB layout, then the normal
# DexYCB converter (9-frame clips, s0 filelists). Usage: scripts/toy_world_generate.sh [TRAIN] [HELDOUT] [SEED]
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
train="${1:-200}"; heldout="${2:-24}"; seed="${3:-0}"
python -m data_tools.pose.toy_world generate --out outputs/toy_world/raw --train "$train" --heldout "$heldout" \
  --seed "$seed" --config configs/toy_world/default.yaml
python -m data_tools.datasets.dexycb --root outputs/toy_world/raw --out outputs/toy_world/processed --num-frames 9 \
  --workers 2
