#!/usr/bin/env bash
# Train the two appearance ControlNets on real FLUX.1-dev weights with accelerate (default: DeepSpeed ZeRO-2).
# Usage: scripts/train_appearance.sh --set model.base_path=/models/FLUX.1-dev --set data.root=/data/dexycb_processed [--set k=v ...]
# Env: CONFIG (default configs/appearance/flux_dev.yaml), ACCELERATE_CONFIG (default configs/accelerate/deepspeed_zero2.yaml),
#      NUM_PROCESSES (default: the accelerate config's).
set -euo pipefail
source "$(dirname "$0")/_setup.sh" gpu
cd "$PAM_ROOT"
launch=(accelerate launch --config_file "${ACCELERATE_CONFIG:-configs/accelerate/deepspeed_zero2.yaml}")
if [ -n "${NUM_PROCESSES:-}" ]; then launch+=(--num_processes "$NUM_PROCESSES"); fi
"${launch[@]}" -m appearance_gen.train --config "${CONFIG:-configs/appearance/flux_dev.yaml}" "$@"
