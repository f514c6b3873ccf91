#!/usr/bin/env bash
# Checkpoint -> model folder, for both stages (sim2real.convert_ckpt picks the stage from the input):
#   bash scripts/convert_ckpt.sh outputs/motion/dexycb/train --out outputs/motion/dexycb/transformer [--dtype bf16]
#   bash scripts/convert_ckpt.sh outputs/appearance_flux --out outputs/appearance_flux/latest    # appearance training
#   bash scripts/convert_ckpt.sh --reference PAM/controlnet.bin --flux FLUX.1-dev --out weights/pam_appearance
#   bash scripts/convert_ckpt.sh --reference PAM/<motion transformer folder> --out weights/pam_motion
set -euo pipefail
source "$(dirname "$0")/_setup.sh" gpu  # DeepSpeed checkpoints need deepspeed
cd "$PAM_ROOT"
python -m sim2real.convert_ckpt "$@"
