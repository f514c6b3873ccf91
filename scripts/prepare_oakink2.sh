#!/usr/bin/env bash
# Pre-compute the motion-stage latents of the processed oakink2 train split (resumable; sharded over NPROC processes,
# one per GPU, merged at the end; NPROC defaults to every visible GPU, 1 without one). Config: ${PAM_MOTION_CONFIG:-configs/motion/oakink2.yaml}; extra key=value overrides pass through.
#   NPROC=4 bash scripts/prepare_oakink2.sh data.root=data/oakink2_processed
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
nproc="${NPROC:-$(python -c 'import torch; print(max(1, torch.cuda.device_count()))')}"
python -m torch.distributed.run --standalone --nproc_per_node "$nproc" -m motion_gen.prepare \
  --config "${PAM_MOTION_CONFIG:-configs/motion/oakink2.yaml}" "$@"
