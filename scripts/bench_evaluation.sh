#!/usr/bin/env bash
# Metric timings at 49x480x720 (PSNR, SSIM, LPIPS-alex) and the 400-d Fréchet distance; JSON in outputs/bench/.
# Usage: bash scripts/bench_evaluation.sh [--device cuda] [--frames N --size H W]
set -euo pipefail
source "$(dirname "$0")/_setup.sh"
cd "$PAM_ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m data_tools.metrics.bench "$@"
