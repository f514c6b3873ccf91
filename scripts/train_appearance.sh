#!/usr/bin/env bash
# Train the two appearance ControlNets on real FLUX.1-dev weights with accelerate (default: DeepSpeed ZeRO-2).
#   bash scripts/train_appearance.sh [launcher options] --set model.base_path=/models/FLUX.1-dev \
#     --set data.root=/data/dexycb_processed [--set k=v ...]
# Launcher options (any position, the same for every training script; docs/gpu_nodes.md):
#   --gpus N                  processes on this machine (default: every visible GPU)
#   --accelerate-config FILE  default configs/accelerate/deepspeed_zero2.yaml (single_gpu, multi_gpu, cpu also work)
#   --num-machines M --machine-rank R --main-process-ip HOST [--main-process-port P]   one launcher per machine
#                             (scripts/slurm/train.sbatch does it under SLURM)
#   --dry-run                 print the accelerate command instead of running it
# Config: ${CONFIG:-configs/appearance/flux_dev.yaml}.
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" gpu  # DeepSpeed: the default accelerate config is ZeRO-2
cd "$PAM_ROOT"
exec python -m data_tools.runtime.launch --default-accelerate-config configs/accelerate/deepspeed_zero2.yaml \
  appearance_gen.train --config "${CONFIG:-configs/appearance/flux_dev.yaml}" "$@"
