#!/usr/bin/env bash
# Motion-stage benchmark: fwd+bwd time and memory of the condition branch vs the base CogVideoX transformer.
#   bash scripts/bench_motion.sh                     # tiny config on CPU (seconds)
#   bash scripts/bench_motion.sh --latent 3 8 12     # larger tiny run
#   bash scripts/bench_motion.sh --real              # GPU: 5B-I2V architecture, random bf16 weights, 49x480x720
set -euo pipefail
source "$(dirname "$0")/_setup.sh" ""
cd "$PAM_ROOT"
python -m motion_gen.bench "$@"
