#!/usr/bin/env bash
# Train the condition branch on the pre-computed oakink2 latents (run scripts/prepare_oakink2.sh first), resuming from the
# newest checkpoint; then: bash scripts/convert_ckpt.sh <output_dir> --out <transformer>.
#   bash scripts/train_motion_oakink2.sh [launcher options] train.loop.max_steps=2000
# Launcher options (any position, the same for every training script; docs/gpu_nodes.md):
#   --gpus N                  processes on this machine (default: every visible GPU)
#   --accelerate-config FILE  default configs/accelerate/deepspeed_zero2.yaml (single_gpu, multi_gpu, cpu also work)
#   --num-machines M --machine-rank R --main-process-ip HOST [--main-process-port P]   one launcher per machine
#                             (scripts/slurm/train.sbatch does it under SLURM)
#   --dry-run                 print the accelerate command instead of running it
# Config: ${PAM_MOTION_CONFIG:-configs/motion/oakink2.yaml}; the other arguments are key=value overrides.
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" gpu  # DeepSpeed: the default accelerate config is ZeRO-2
cd "$PAM_ROOT"
exec python -m data_tools.runtime.launch --default-accelerate-config configs/accelerate/deepspeed_zero2.yaml \
  motion_gen.train --config "${PAM_MOTION_CONFIG:-configs/motion/oakink2.yaml}" model.transformer=null "$@"
