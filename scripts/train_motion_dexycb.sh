#!/usr/bin/env bash
# Train the condition branch on the pre-computed dexycb latents (run scripts/prepare_dexycb.sh first), resuming from
# the newest checkpoint. Accelerate config: ${ACCELERATE_CONFIG:-configs/accelerate/deepspeed_zero2.yaml}
# (single_gpu.yaml, multi_gpu.yaml, cpu.yaml also work). Then: bash scripts/convert_ckpt.sh <output_dir> --out <transformer>
#   bash scripts/train_motion_dexycb.sh train.loop.max_steps=2000
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
accelerate launch --config_file "${ACCELERATE_CONFIG:-configs/accelerate/deepspeed_zero2.yaml}" -m motion_gen.train \
  --config "${PAM_MOTION_CONFIG:-configs/motion/dexycb.yaml}" model.transformer=null "$@"
