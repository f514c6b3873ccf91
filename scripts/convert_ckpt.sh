#!/usr/bin/env bash
# Training checkpoint (accelerate or DeepSpeed folder, or a training output folder) -> diffusers transformer folder.
#   bash scripts/convert_ckpt.sh outputs/motion/dexycb/train --out outputs/motion/dexycb/transformer [--dtype bf16]
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
python -m motion_gen.convert_ckpt "$@"
