#!/usr/bin/env bash
# Everything to measure on a lent GPU machine, in one go; logs, JSON figures and summary.md in OUT
# (default outputs/gpu_checks/), to be copied into docs/benchmarks.md ("GPU"):
#   1. preflight: bash scripts/check_node.sh
#   2. bash scripts/bench_motion.sh --real: one training step of CogVideoX-5b-I2V + condition branch (random bf16
#      weights, 49x480x720): with gradient checkpointing, without, and DeepSpeed ZeRO-2 with the optimizer on the CPU
#   3. bash scripts/bench_appearance.sh --real: FLUX.1-dev sizes, with and without gradient checkpointing
#   4. one sim2real generation at 49x480x720 with random real-size weights (configs/sim2real/random_real_size.yaml:
#      FLUX.1-dev + branches, then CogVideoX-5b-I2V + branch, both random): time per stage and per video
# Every step runs even when an earlier one failed; the exit status is the number of failed steps.
# Usage: bash scripts/gpu_checks.sh [OUT]
set -uo pipefail
source "$(dirname "$0")/_help.sh" "$@"
source "$(dirname "$0")/_setup.sh" gpu
cd "$PAM_ROOT"
source "$(dirname "$0")/_steps.sh"   # after _setup.sh: its set -e off, every step runs
out="${1:-outputs/gpu_checks}"
steps_begin "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
step preflight bash scripts/check_node.sh
step motion_real_gc bash scripts/bench_motion.sh --real --out "$out/motion_real_gc.json"
step motion_real_no_gc bash scripts/bench_motion.sh --real --no-gradient-checkpointing --out "$out/motion_real_no_gc.json"
step motion_real_zero2_offload bash scripts/bench_motion.sh --real --zero2-offload --out "$out/motion_real_zero2_offload.json"
step appearance_real bash scripts/bench_appearance.sh --real --out "$out/appearance"
step sim2real_real_size python -m sim2real.demo --out "$out/sim2real" --config configs/sim2real/random_real_size.yaml \
  --frames 49 --height 480 --width 720
{
  echo; echo "Figures (JSON):"
  for f in "$out"/*.json "$out"/appearance/*.json; do [ -f "$f" ] && { echo "- $f"; sed 's/^/    /' "$f"; }; done
  for f in "$out"/sim2real/sim2real/*/manifest.json; do
    [ -f "$f" ] && python -c 'import json,sys; m=json.load(open(sys.argv[1])); print("- sim2real timings", sys.argv[1], json.dumps(m.get("timings")))' "$f"
  done
} >> "$out/summary.md"
steps_end
