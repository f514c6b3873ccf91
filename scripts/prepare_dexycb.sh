#!/usr/bin/env bash
# Pre-compute the motion-stage latents of the processed dexycb train split (resumable; sharded over NPROC processes,
# one per GPU, merged at the end). Config: ${PAM_MOTION_CONFIG:-configs/motion/dexycb.yaml}; extra key=value overrides pass through.
#   NPROC=4 bash scripts/prepare_dexycb.sh data.root=data/dexycb_processed
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
python -m torch.distributed.run --standalone --nproc_per_node "${NPROC:-1}" -m motion_gen.prepare \
  --config "${PAM_MOTION_CONFIG:-configs/motion/dexycb.yaml}" "$@"
