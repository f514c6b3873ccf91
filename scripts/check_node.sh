#!/usr/bin/env bash
# Preflight of a GPU node before a long run: torch/CUDA/driver fit, GPUs (memory, bf16), SDPA flash, DeepSpeed ops,
# NCCL, Python requirements, the model folders of the given configs (tokenizers loaded), free disk, and memory per
# GPU estimated for each config. Exit status 1 on any blocking problem; a machine without a GPU reports "no GPU".
#   bash scripts/check_node.sh [--motion-config configs/motion/cogvideox5b_i2v.yaml]
#        [--appearance-config configs/appearance/flux_dev.yaml] [--mode infer|train] [--gpus N]
set -euo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" ""  # explicit: a sourced file would otherwise see our arguments
cd "$PAM_ROOT"
python -m sim2real.preflight "$@"
